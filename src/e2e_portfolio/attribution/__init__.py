"""Which exposures drive a trained predictor's expected returns."""
