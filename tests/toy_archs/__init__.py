"""Networks that exist only for tests; each module registers one architecture when imported."""
