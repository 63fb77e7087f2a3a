"""The core every layer may use: errors (`errors`), the artifact store (`store`), model loading,
devices and precision (`models`), settings from config dataclasses (`settings`), the machine a run
was measured on (`machine`) and the KFP metrics files (`run_report`).

Layer 0: imports nothing of pushgen outside `pushgen.core`; it stays free of torch at import time.
"""
