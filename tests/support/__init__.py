"""What the tests build: small benchmark folders, test-only methods, tiny metric models, toy FlexEdit inputs."""
