"""The shared trainer: ``train(cfg, run_dir) -> metrics`` for every recipe."""
