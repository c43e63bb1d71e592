"""The CNN+LSTM+attention forecaster: model, training, calibration, metrics (and HPO, tracking)."""

from trading_core.forecast.model import ForecasterConfig, ForecasterEnsemble, Prediction
from trading_core.forecast.train import TrainConfig, TrainResult, train_ensemble

__all__ = ["ForecasterConfig", "ForecasterEnsemble", "Prediction", "TrainConfig", "TrainResult", "train_ensemble"]
