"""Valid run records for tests that need no training."""

from archs import REGISTRY
from bench import records


def make_record(arch_id="model_1_a", seed=0, acc=0.95, epochs=3, budget="ci", model_file=None):
    spec = REGISTRY[arch_id]
    return {
        "schema": records.SCHEMA,
        "version": records.VERSION,
        "status": "completed",
        "arch": {"id": arch_id, "section": spec.section, "params": spec.params,
                 "conv_layers": spec.conv_layers, "dropout": spec.dropout,
                 "batch_norm": spec.batch_norm},
        "config": {"budget": {"name": budget, "epochs": epochs}, "seed": seed, "batch_size": 128,
                   "eval_batch_size": 1024, "optimizer": "adam", "learning_rate": 0.001,
                   "precision": "float32", "train_samples": 4096, "test_samples": 2000},
        "epochs": [{"epoch": e, "loss": 1.0 / e, "accuracy": acc - 0.1 / e, "val_loss": 0.9 / e,
                    "val_accuracy": acc - 0.05 / e, "train_seconds": 1.0, "eval_seconds": 0.1,
                    "compiled": e == 1} for e in range(1, epochs + 1)],
        "timing": {"steady_epoch_seconds": 1.0, "steady_samples_per_second": 4096.0,
                   "efficiency": 0.5, "first_epoch_seconds": 2.0,
                   "training_flops_per_sample": 1, "peak_flops": 8192.0},
        "final": {"test_loss": 0.2, "test_accuracy": acc},
        "weights": {"file": model_file, "layers": []},
        "divergence": None,
        "provenance": {"versions": {"keras": "3"}, "backend": "tensorflow",
                       "device": {"kind": "cpu", "name": "cpu"}, "precision": "float32",
                       "data_digest": "0" * 64, "started_at": "t", "command": "c"},
    }  # fmt: skip
