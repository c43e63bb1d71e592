"""Models-from-code entry point of the forecaster pyfunc (see :mod:`.pyfunc_model`).

``mlflow.pyfunc.log_model(python_model=<this file>)`` copies this file into the logged model and
runs it when the model is loaded: it only names the model class, so no Python object is pickled.
Nothing in trading_core imports it (importing it sets MLflow's current model as a side effect).
"""

from mlflow.models import set_model

from trading_core.forecast.pyfunc_model import ForecasterPyfunc

set_model(ForecasterPyfunc())
