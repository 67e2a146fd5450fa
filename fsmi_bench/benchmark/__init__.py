"""The benchmark stage: sources -> cases, edit regions and the 9 mask conditions, a manifest and its exports."""
