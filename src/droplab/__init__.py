"""droplab: how dropout, batch normalization and classifier heads change what image classifiers learn."""
