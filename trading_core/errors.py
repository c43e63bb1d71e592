"""Specific exceptions: each says what was wrong, where (file/row/field/symbol) and what was expected."""

from __future__ import annotations


class TradingError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(TradingError, ValueError):
    """A request or configuration value is invalid (bad symbol, date range, unknown source...)."""


class ProviderError(TradingError):
    """A data provider could not return data (bad file, bad response)."""


class ProviderUnavailable(ProviderError):
    """A remote provider cannot be reached (offline, DNS, refused) or its optional extra is missing."""


class SchemaError(ProviderError, ValueError):
    """Input data lacks a required column or has an unusable layout."""


class DataQualityError(TradingError):
    """The share of bad rows exceeds the policy; nothing was written to the lake."""


class DatasetNotFound(TradingError, LookupError):
    """No dataset with the requested version is recorded."""


class DatasetIntegrityError(TradingError):
    """The lake no longer holds the exact content a dataset version was recorded with."""
