"""Evaluation protocols (LFW verification and identification, detection), metrics, plots and reports."""
