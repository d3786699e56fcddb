"""Compile-only fit check: the real sharded train step compiled for a TPU topology on any host.

Interface (the implementation lands in a follow-up commit):
  check(config, topology: str) -> dict   # per-device memory vs HBM, FLOPs, collectives, fits
  format_report(report: dict) -> str
"""
import ml_collections


def check(config: ml_collections.ConfigDict, topology: str) -> dict:
  raise NotImplementedError('compile_check.check lands in the next commit')


def format_report(report: dict) -> str:
  raise NotImplementedError('compile_check.format_report lands in the next commit')
