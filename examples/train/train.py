#!/usr/bin/python3
"""Data-parallel training of a small regression model with torch.distributed (gloo, on CPU).

With a PyTorch that sees a GPU (torch.cuda.is_available()), each task trains on GPU LOCAL_RANK
instead, and the ranks average gradients over NCCL; --device cpu keeps it on the CPU.

Run as a Berth job (examples/train/job.yaml): each task reads the rank, the world size and the
rendezvous address the job controller gives it (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
trains on its own shard of a synthetic dataset, and averages gradients with the others after
every step. Rank 0 writes a checkpoint every --checkpoint-every steps, and every rank stops at
the same step when any of them is asked to stop (SIGTERM), rank 0 writing a last checkpoint
first. A task started again (a retry of the gang, or the gang placed again after a preemption)
resumes from the checkpoint it finds in the directory BERTH_RESUME_FROM names, where the job
sets it, else in --checkpoint-dir (default: BERTH_CHECKPOINT_DIR, which a job with a
`checkpoint` block sets).

--fail-once-at STEP makes rank 1 exit with code 3 at that step the first time only (it leaves a
marker in the checkpoint directory): a failure to show the job's retry resuming from a
checkpoint.
"""
import argparse
import datetime
import os
import signal
import sys
import time

import torch
import torch.distributed as dist

FEATURES = 8


def log(rank, message):
    print(f"rank {rank}: {message}", flush=True)


def save(path, model, optimizer, step):
    # Written beside, then renamed: a task stopped mid-write leaves the last whole checkpoint.
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, tmp)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps to train in all")
    parser.add_argument("--checkpoint-dir", default=os.environ.get("BERTH_CHECKPOINT_DIR", ""),
                        help="where rank 0 writes checkpoints (default: BERTH_CHECKPOINT_DIR)")
    parser.add_argument("--checkpoint-every", type=int, default=25)
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds to wait per step")
    parser.add_argument("--fail-once-at", type=int, default=-1)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: a GPU when PyTorch sees one, else the CPU")
    args = parser.parse_args()

    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)
    stop_asked = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop_asked.__setitem__(0, True))

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        init_method=f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    log(rank, f"joined a group of {world}, training on {device}")

    torch.manual_seed(0)  # every rank starts from the same weights
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    checkpoint_dir = args.checkpoint_dir
    checkpoint = os.path.join(checkpoint_dir, "checkpoint.pt") if checkpoint_dir else ""
    resume_dir = os.environ.get("BERTH_RESUME_FROM") or checkpoint_dir
    resume = os.path.join(resume_dir, "checkpoint.pt") if resume_dir else ""
    start = 0
    if resume and os.path.exists(resume):
        state = torch.load(resume, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        log(rank, f"resumed from step {start} ({resume})")

    true_w = (torch.arange(1.0, FEATURES + 1) / FEATURES).to(device)
    # The data is drawn on the CPU, so a shard is the same wherever the task trains.
    data = torch.Generator().manual_seed(1000 + rank)  # this rank's shard
    loss = torch.tensor(0.0)
    step = start
    while step < args.steps:
        if (rank == 1 and step == args.fail_once_at and checkpoint_dir and
                not os.path.exists(os.path.join(checkpoint_dir, "failed-once"))):
            open(os.path.join(checkpoint_dir, "failed-once"), "w").close()
            log(rank, f"failing at step {step} as asked")
            sys.exit(3)
        x = torch.randn(64, FEATURES, generator=data).to(device)
        y = x @ true_w + 0.01 * torch.randn(64, generator=data).to(device)
        loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
        optimizer.zero_grad()
        loss.backward()
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= world
        optimizer.step()
        step += 1
        # Every rank learns whether any was asked to stop, so all stop after the same step.
        stop = torch.tensor([1.0 if stop_asked[0] else 0.0], device=device)
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        if rank == 0 and checkpoint and (step % args.checkpoint_every == 0 or stop.item() > 0):
            save(checkpoint, model, optimizer, step)
            log(rank, f"checkpoint at step {step}, loss {loss.item():.5f}")
        if stop.item() > 0:
            log(rank, f"stopping at step {step} as asked")
            dist.destroy_process_group()
            sys.exit(128 + signal.SIGTERM)
        if args.step_delay > 0:
            time.sleep(args.step_delay)

    # The weights agree on every rank: each reports the loss on the same held-out batch.
    held_out = torch.Generator().manual_seed(7)
    x = torch.randn(256, FEATURES, generator=held_out).to(device)
    with torch.no_grad():
        final = torch.nn.functional.mse_loss(model(x).squeeze(1), x @ true_w).item()
    log(rank, f"done: {step} steps, held-out loss {final:.5f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
