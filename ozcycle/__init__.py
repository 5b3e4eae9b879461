"""What to do after `fit_one_cycle`: continuation schedules, gradient clipping and rerunnable experiments for fastai."""
__version__ = "0.1.0"
