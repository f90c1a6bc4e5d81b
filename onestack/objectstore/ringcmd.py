"""``onestack ring``: build, add devices to, rebalance and show the rings.

    onestack ring show [--ring object]
    onestack ring build --part-power 10 --replicas 3 [--min-part-hours 1] [--ring R] [--force]
    onestack ring add --device d4 [--weight 100] [--region 1] [--zone 4] [--ip 127.0.0.1]
                      [--port 6200] [--ring R]
    onestack ring set-weight --id 3 --weight 0 [--ring R]
    onestack ring remove --id 3 [--ring R]
    onestack ring rebalance [--seed N] [--ring R]

Without ``--ring`` a command applies to all three rings (account, container,
object). Changes are written atomically; a running cloud picks them up within
a second. A device added for this node is a directory under
``<state_dir>/objectstore/devices`` (made here).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from onestack.objectstore.cluster import Cluster
from onestack.objectstore.ring import KINDS, RingBuilder, RingError


def add_parser(sub: argparse._SubParsersAction, common: object) -> None:  # type: ignore[type-arg]
    ring = sub.add_parser("ring", help="object storage rings")
    rsub = ring.add_subparsers(dest="ring_command", required=True)

    def base(name: str, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = rsub.add_parser(name, help=help_)
        common(p)  # type: ignore[operator]
        p.add_argument("--ring", choices=KINDS, help="one ring (default: all three)")
        p.set_defaults(func=main)
        return p

    p = base("show", "print the devices and their share of partitions")
    p = base("build", "create new rings (refuses to replace existing ones without --force)")
    p.add_argument("--part-power", type=int, default=10)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--min-part-hours", type=int, default=1)
    p.add_argument("--force", action="store_true")
    p = base("add", "add a device")
    p.add_argument("--device", required=True)
    p.add_argument("--weight", type=float, default=100.0)
    p.add_argument("--region", type=int, default=1)
    p.add_argument("--zone", type=int, default=1)
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6200)
    p = base("set-weight", "change a device's weight")
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--weight", type=float, required=True)
    p = base("remove", "take a device out (its partitions move at the next rebalance)")
    p.add_argument("--id", type=int, required=True)
    p = base("rebalance", "assign partitions to the devices")
    p.add_argument("--seed", type=int, default=None)


def main(args: argparse.Namespace) -> int:
    from onestack.config import load_settings

    settings = load_settings(getattr(args, "state_dir", None))
    cluster = Cluster(settings.state_dir / "objectstore")
    kinds = [args.ring] if args.ring else list(KINDS)
    try:
        for kind in kinds:
            run_one(cluster, kind, args)
    except RingError as exc:
        print(f"onestack ring: {exc}")
        return 1
    return 0


def run_one(cluster: Cluster, kind: str, args: argparse.Namespace) -> None:
    path: Path = cluster.ring_path(kind)
    cmd = args.ring_command
    if cmd == "build":
        if path.exists() and not args.force:
            raise RingError(f"{path} exists (use --force to replace it and lose its layout)")
        _ = cluster.secret
        RingBuilder(args.part_power, args.replicas, args.min_part_hours).save(path)
        print(f"{kind}: built, part power {args.part_power}, {args.replicas} replicas")
        return
    builder = RingBuilder.load(path)
    if cmd == "show":
        show(kind, builder)
        return
    if cmd == "add":
        dev = builder.add_device(args.device, weight=args.weight, region=args.region,
                                 zone=args.zone, ip=args.ip, port=args.port)
        (cluster.devices_root / args.device).mkdir(parents=True, exist_ok=True)
        print(f"{kind}: added device {dev.id} {dev.host}/{dev.device} weight {dev.weight}")
    elif cmd == "set-weight":
        builder.set_weight(args.id, args.weight)
        print(f"{kind}: device {args.id} weight {args.weight}")
    elif cmd == "remove":
        builder.remove_device(args.id)
        print(f"{kind}: removed device {args.id}")
    elif cmd == "rebalance":
        moved = builder.rebalance(seed=args.seed)
        print(f"{kind}: reassigned {moved} partition replicas; balance {builder.balance():.2f}%")
    builder.save(path)


def show(kind: str, b: RingBuilder) -> None:
    counts = {d.id: 0 for d in b.devices}
    for row in b.assignment:
        for dev_id in row:
            if dev_id in counts:
                counts[dev_id] += 1
    print(f"{kind} ring: {b.parts} partitions, {b.replicas} replicas, "
          f"min_part_hours {b.min_part_hours}, version {b.version}")
    print(f"  {'id':>3} {'region':>6} {'zone':>4} {'host':<21} {'device':<10} {'weight':>7} "
          f"{'parts':>6}")
    for d in b.devices:
        print(f"  {d.id:>3} {d.region:>6} {d.zone:>4} {d.host:<21} {d.device:<10} "
              f"{d.weight:>7.1f} {counts[d.id]:>6}")
