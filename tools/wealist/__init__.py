"""weAlist GitOps tooling: environments change only through validated git commits."""
