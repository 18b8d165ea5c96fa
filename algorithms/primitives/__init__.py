"""Shared building blocks of the plugins: checks, samples, rotations, code helpers, mixins."""
