"""The RL decision engine: the trading environment (single and vectorised), agents, training."""
