"""Out-of-sample backtests and strategy statistics."""
