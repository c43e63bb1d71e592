"""The MLflow model registry side: candidates, aliases, lineage tags (the full TradingPolicy bundle
and the governance gates come with the registry issue)."""
