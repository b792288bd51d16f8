"""The Trainer of speechllm: learning rates per parameter group, task-sampled batches, loss curves as a PNG."""

import json
import logging
import os

import torch
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from training.model_card import write_model_card

logger = logging.getLogger("speechllm.trainer")


class SpeechLLMTrainer(Trainer):
    """`Trainer` with two additions the recipe needs.

    group_learning_rates: {substring of a parameter name: learning rate}; matching trainable parameters get their own
        AdamW group (stage C: mapper 5e-5, LoRA 1e-5), the rest keep `args.learning_rate`.
    batch_sampler: yields lists of example indices (task-sampled, paired batches); `accelerate` deals batch i to
        process i % num_processes, as with any batch sampler.
    """

    def __init__(self, *args, group_learning_rates: dict[str, float] | None = None, batch_sampler=None, **kwargs):
        self.group_learning_rates = group_learning_rates or {}
        self.batch_sampler = batch_sampler
        super().__init__(*args, **kwargs)

    def create_model_card(self, *args, **kwargs):
        """The project's own card (training/model_card.py), not the Trainer's generic one, goes to the Hub."""
        if self.is_world_process_zero() and os.path.exists(os.path.join(self.args.output_dir, "config.json")):
            write_model_card(self.args.output_dir)

    def create_optimizer(self, model=None):
        if self.optimizer is None and self.group_learning_rates:
            model = self.model if model is None else model
            groups = {}
            for name, param in model.named_parameters():
                if not param.requires_grad:
                    continue
                rate = next((lr for part, lr in self.group_learning_rates.items() if part in name), self.args.learning_rate)
                groups.setdefault(rate, []).append(param)
            self.optimizer = torch.optim.AdamW(
                [{"params": params, "lr": rate} for rate, params in groups.items()],
                lr=self.args.learning_rate,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
                weight_decay=self.args.weight_decay,
            )
            logger.info("optimizer groups: %s", {rate: len(params) for rate, params in groups.items()})
            return self.optimizer
        return super().create_optimizer(model)

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            self.length_sampler = SeededLengthGroupedSampler(sampler, self.args.seed)
            return self.length_sampler
        return sampler

    def _run_epoch(self, *args, epoch: int, **kwargs):
        # The Trainer's own set_epoch does not reach a sampler under accelerate's skip_first_batches wrappers (the
        # first epoch of a resumed multi-process run), which would replay epoch 0's order there: tell ours directly.
        for sampler in (self.batch_sampler, getattr(self, "length_sampler", None)):
            if sampler is not None:
                sampler.set_epoch(epoch)
        return super()._run_epoch(*args, epoch=epoch, **kwargs)

    def get_train_dataloader(self) -> DataLoader:
        if self.batch_sampler is None:
            return super().get_train_dataloader()
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=self.batch_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
        )
        return self.accelerator.prepare(loader)


class SeededLengthGroupedSampler(torch.utils.data.Sampler):
    """The Trainer's length-grouped order, drawn from (seed, epoch) alone. The stock sampler draws from the global
    RNG when its epoch starts; a run resumed mid-epoch restores that RNG only after the draw, so it replayed the
    epoch in another order (and a different loss curve), and processes whose RNGs differ could overlap."""

    def __init__(self, sampler: LengthGroupedSampler, seed: int):
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        self.sampler.generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(self.sampler)


def plot_loss_curves(log_history: list[dict], path: str) -> str | None:
    """Training (and evaluation) loss against the step, as a PNG beside the checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {
        name: [(entry["step"], entry[name]) for entry in log_history if name in entry and "step" in entry]
        for name in ("loss", "eval_loss")
    }
    if not any(series.values()):
        return None
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, points in series.items():
        if points:
            steps, values = zip(*points)
            axis.plot(steps, values, marker="o" if len(points) < 30 else None, label=name.replace("_", " "))
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    with open(os.path.splitext(path)[0] + ".json", "w") as handle:
        json.dump(series, handle)
    return path
