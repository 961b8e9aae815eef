"""The ``bastion demo`` walk-through: the lifecycle on a sample project Bastion makes itself."""
