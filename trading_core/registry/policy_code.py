"""Models-from-code entry point of the ``TradingPolicy`` pyfunc (see :mod:`.pyfunc`).

MLflow copies this file into the logged model and runs it on load: it only names the model class,
so nothing is unpickled. Nothing in trading_core imports it (importing it sets MLflow's current model).
"""

from mlflow.models import set_model

from trading_core.registry.pyfunc import TradingPolicyPyfunc

set_model(TradingPolicyPyfunc())
