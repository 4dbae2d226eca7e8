"""Training: configuration and recipes, augmentation, step objects, the loop, runs and k-fold CV."""

from .run import (
    RECIPES,
    TrainConfig,
    cross_validate,
    epoch_generator,
    fit,
    recipe_config,
    resolve_run_config,
    run_training,
    split_indices,
)

__all__ = ["RECIPES", "TrainConfig", "cross_validate", "epoch_generator", "fit", "recipe_config",
           "resolve_run_config", "run_training", "split_indices"]
