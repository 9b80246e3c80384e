"""Utilities below everything else: argument checks, the frozen-model context, devices, seeded streams, atomic
writes, learning-rate schedules, result tables.

Nothing in this package imports an op, a model or a method.
"""
