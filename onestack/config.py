"""One settings object for the whole process.

Values come, in increasing priority, from the defaults below, the file
``<state_dir>/onestack.toml`` (sections named like the dataclasses, e.g.
``[identity]``), environment variables ``ONESTACK_<SECTION>_<FIELD>`` (or
``ONESTACK_<FIELD>`` for top-level fields) and command-line flags.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class IdentitySettings:
    token_expiration: int = 3600  # seconds
    # bcrypt cost (log2 rounds); Keystone's default is 12.
    password_hash_rounds: int = 12
    # Remember a successful password check this long, so logging in again with
    # the same password skips bcrypt (wrong passwords always pay it); 0 = off.
    password_check_cache_seconds: float = 300.0
    # Keystone [security_compliance]; all off (0 / empty) by default.
    lockout_failure_attempts: int = 0
    lockout_duration: int = 1800
    password_expires_days: int = 0
    unique_last_password_count: int = 0
    minimum_password_age: int = 0
    password_regex: str = ""
    password_regex_description: str = ""
    change_password_upon_first_use: bool = False
    disable_user_account_days_inactive: int = 0
    # How long other services may trust a validated token before asking again.
    token_cache_seconds: float = 5.0
    max_fernet_keys: int = 5


@dataclass
class ImageSettings:
    # per-project quotas; -1 = unlimited
    image_count_total: int = -1
    image_size_total: int = -1  # bytes
    image_size_cap: int = 1099511627776  # 1 TiB, Glance's default


@dataclass
class TasksSettings:
    # How long a claimed task's lease lasts; the holder heartbeats every third of it.
    lease_seconds: float = 60.0
    # How often an idle worker looks for work when no wake-up came (the fallback).
    poll_interval: float = 5.0
    # Tasks the cloud's own worker runs at once (handlers registered in-process).
    local_concurrency: int = 4
    # The longest a remote agent's claim waits in the API for work (long poll).
    long_poll_seconds: float = 20.0
    # A queued task pinned to a host silent this long is failed or re-targeted
    # (its kind's rule); a host that never reported gets this long from the task's creation.
    dead_host_seconds: float = 300.0
    # How often the sweeper (one API process at a time) looks for such tasks.
    sweep_interval: float = 30.0
    # Finished tasks are deleted this long after they finished (0 keeps them).
    keep_finished_seconds: float = 7 * 86400.0


@dataclass
class HostsSettings:
    # This host's name in the host/service table (os-services, agents); default: hostname.
    name: str = ""
    availability_zone: str = "nova"
    # How often services heartbeat (Nova's report_interval).
    report_interval: float = 10.0
    # A service is down after this long without a heartbeat: Nova's
    # service_down_time and Neutron's agent_down_time.
    service_down_time: float = 60.0
    agent_down_time: float = 75.0


@dataclass
class NetworkSettings:
    # Neutron's per-project default quotas; -1 = unlimited
    quota_network: int = 100
    quota_subnet: int = 100
    quota_subnetpool: int = -1
    quota_port: int = 500
    quota_router: int = 10
    quota_floatingip: int = 50
    quota_security_group: int = 10
    quota_security_group_rule: int = 100
    # project (VXLAN) networks: MTU leaves room for the VXLAN header between hosts
    tenant_network_mtu: int = 1450
    flat_network_mtu: int = 1500
    vni_ranges: str = "1:16000"
    physical_networks: str = "public"  # comma-separated, usable by flat networks
    base_mac: str = "fa:16:3e:00:00:00"  # Neutron's; the last three octets are random
    dns_domain: str = "openstacklocal."
    max_allowed_address_pair: int = 10
    # all-in-one defaults created at first start, as DevStack creates them
    create_defaults: bool = True
    public_cidr: str = "172.24.4.0/24"
    public_gateway: str = "172.24.4.1"
    private_cidr: str = "10.0.0.0/26"
    # The data plane (bridges, DHCP, routers, security groups, metadata), applied
    # by the network agent: "auto" (on when run as root), "on" or "off".
    dataplane: str = "auto"
    # When root: the host reaches the external networks through a veth holding
    # their gateway (172.24.4.1), as on DevStack. Off (--no-host-network): a
    # namespace <prefix>-ext stands in for the host; nothing touches the host.
    host_network: bool = True
    # How often the agent re-reads which ports are plugged (their status) and
    # repairs what drifted (a bridge or namespace removed under it).
    agent_resync_interval: float = 5.0
    # The agent's handlers, link watch and metadata proxy run in a child process
    # of `onestack up` (its own interpreter and CPU, beside the API); false: in
    # the API's process.
    agent_process: bool = True


@dataclass
class ComputeSettings:
    # --- the API, scheduler and agent (compute engineer) ---------------------
    # The virt driver of this host's compute agent: "qemu" (real guests) or
    # "fake" (in memory: API and scale tests only); "none" runs no agent here.
    driver: str = "qemu"
    # Host resources kept from guests (Nova's reserved_host_*); the
    # allocation ratios are in the QEMU driver's block below.
    reserved_host_memory_mb: int = 512
    reserved_host_disk_mb: int = 0
    default_availability_zone: str = "nova"
    # The fake driver's host (what it reports to the scheduler).
    fake_vcpus: int = 64
    fake_memory_mb: int = 262144
    fake_local_gb: int = 4096
    # Nova's [api] max_limit: the longest page of any list.
    max_limit: int = 1000
    # Per-project quota defaults (Nova's [quota]); -1 = unlimited.
    quota_instances: int = 10
    quota_cores: int = 20
    quota_ram: int = 51200
    quota_metadata_items: int = 128
    quota_key_pairs: int = 100
    quota_server_groups: int = 10
    quota_server_group_members: int = 10
    # The shared secret that signs the Networking metadata proxy's
    # X-Instance-ID headers (Nova's metadata_proxy_shared_secret); empty: one
    # is generated in the state directory on first use.
    metadata_proxy_shared_secret: str = ""
    # Console tokens live this long (Nova's [consoleauth] token_ttl).
    console_token_ttl: int = 600
    # How often the compute agent reports its host and syncs power states.
    report_interval: float = 10.0
    sync_power_state_interval: float = 60.0
    # A server in ERROR or being deleted keeps its row (soft delete) for
    # changes-since and os-instance-actions; purged after this many seconds.
    deleted_server_retention: float = 7 * 86400.0

    # --- the QEMU driver and the host's image cache (onestack/compute/virt/qemu) ---
    # QEMU's accelerator: "auto" (KVM where /dev/kvm really runs a guest, else
    # TCG), "kvm" or "tcg".
    accelerator: str = "auto"
    # TCG's translated-code buffer per guest, MiB (QEMU's -accel tcg,tb-size);
    # 0: QEMU's default (1 GiB reserved). Not used under KVM.
    tcg_tb_size_mb: int = 0
    # Instances' disks and files (<uuid>/), and the image cache (_base/);
    # empty: <state_dir>/instances. QEMU's sockets and logs: <state_dir>/run/qemu.
    instances_dir: str = ""
    # The image cache (Nova's _base): unused base images go after this long
    # (Nova's remove_unused_original_minimum_age_seconds), and the least
    # recently used unused ones sooner while the cache is over its size.
    image_cache_max_gb: float = 20.0
    image_cache_min_age_seconds: int = 86400
    # Base images as raw files (Nova's force_raw_images; faster reads, more
    # disk) instead of qcow2 kept as uploaded.
    force_raw_images: bool = False
    # Seconds a clean power-off (stop, resize, shelve) waits for the guest to
    # shut down before QEMU is stopped (Nova's shutdown_timeout), and a soft
    # reboot before it turns hard (Nova's libvirt wait_soft_reboot_seconds).
    shutdown_timeout: int = 60
    wait_soft_reboot_seconds: int = 120
    # A VNC server per guest on a unix socket (for the noVNC console) and its
    # video device when the image names none (hw_video_model).
    vnc_enabled: bool = True
    default_video_model: str = "vga"
    # Empty PCIe slots a guest gets for interfaces and volumes attached later.
    hotplug_slots: int = 4
    # Where guests without a NIC run (so that an interface attached later can
    # join them); empty: the host's own namespace.
    default_netns: str = ""
    # How far the scheduler may overcommit this host (Nova's initial_*_allocation_ratio).
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0


@dataclass
class ObjectStoreSettings:
    """Object Storage (Swift v1): the all-in-one storage node and its limits."""

    # The rings the first start builds (``onestack ring`` changes them later).
    part_power: int = 10
    replicas: int = 3
    devices: int = 3  # directories under <state_dir>/objectstore/devices
    min_part_hours: int = 1
    # Swift's [swift-constraints] defaults.
    max_file_size: int = 5368709122
    max_meta_name_length: int = 128
    max_meta_value_length: int = 256
    max_meta_count: int = 90
    max_meta_overall_size: int = 4096
    max_header_size: int = 8192
    max_object_name_length: int = 1024
    container_listing_limit: int = 10000
    account_listing_limit: int = 10000
    max_account_name_length: int = 256
    max_container_name_length: int = 256
    # Roles (keystoneauth): operator roles own their project's account.
    operator_roles: str = "admin,member,swiftoperator"
    reseller_admin_role: str = "ResellerAdmin"
    # Large objects (SLO) and bulk requests.
    max_manifest_segments: int = 1000
    max_manifest_size: int = 8388608
    min_segment_size: int = 1
    max_containers_per_extraction: int = 10000
    max_deletes_per_request: int = 10000
    # TempURL: the digests accepted (``/info`` advertises exactly these).
    tempurl_digests: str = "sha1,sha256,sha512"
    # Background work (seconds between passes; 0 = off).
    replicator_interval: float = 30.0
    auditor_interval: float = 300.0
    expirer_interval: float = 10.0
    updater_interval: float = 5.0
    # Bytes per second the auditor reads at most (Swift's files_per_second / bytes_per_second).
    auditor_bytes_per_second: int = 10000000
    # fsync object data before the rename (durable across a power cut).
    fsync: bool = True
    # S3 (its own listener: S3 clients expect buckets at the root of their
    # endpoint). -1 = the main port + 1 (8801 by default), 0 = not served.
    s3_port: int = -1
    s3_public_url: str = ""  # URL S3 clients use; defaults to http://host:s3_port
    # The region S3 clients sign for (what boto3 and the aws CLI use when told none).
    s3_location: str = "us-east-1"
    s3_allowable_clock_skew: int = 900  # seconds (S3's 15 minutes)
    s3_max_bucket_listing: int = 1000
    s3_max_parts_listing: int = 1000
    s3_max_multi_delete_objects: int = 1000
    s3_max_upload_part_num: int = 1000  # at most max_manifest_segments
    s3_min_segment_size: int = 5242880  # every part but the last (S3's 5 MiB)


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8800
    state_dir: Path = field(default_factory=lambda: Path.home() / ".onestack")
    # URL clients use to reach us; defaults to http://host:port
    public_url: str = ""
    database_url: str = ""  # defaults to sqlite:///<state_dir>/onestack.db
    region: str = "RegionOne"
    log_level: str = "info"
    # Policy overrides, one file per service: <policy_dir>/<service>.yaml
    # (default <state_dir>/policy/identity.yaml, image.yaml ...). policy_file is
    # the single shared file of earlier versions (default <state_dir>/policy.yaml),
    # read for every service only while policy_dir does not exist.
    policy_dir: str = ""
    policy_file: str = ""
    # oslo.policy's scope enforcement: a token of a scope a rule does not take
    # (its upstream scope_types) is refused.
    enforce_scope: bool = True
    # The master key that wraps the token and credential keys in the database
    # (common/masterkey.py): the key itself (base64), or a file holding it;
    # default <state_dir>/master.key, made on first start. API processes that
    # share a database must share it.
    master_key: str = ""
    master_key_file: str = ""
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    image: ImageSettings = field(default_factory=ImageSettings)
    tasks: TasksSettings = field(default_factory=TasksSettings)
    hosts: HostsSettings = field(default_factory=HostsSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    compute: ComputeSettings = field(default_factory=ComputeSettings)
    objectstore: ObjectStoreSettings = field(default_factory=ObjectStoreSettings)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'onestack.db'}"

    @property
    def policy_path(self) -> Path:
        """The shared policy file of earlier versions (see ``policy_dir``)."""
        return Path(self.policy_file) if self.policy_file else self.state_dir / "policy.yaml"

    @property
    def policy_dir_path(self) -> Path:
        return Path(self.policy_dir).expanduser() if self.policy_dir else self.state_dir / "policy"


def _coerce(value: Any, target_type: Any) -> Any:
    if target_type in (bool, "bool"):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if target_type in (int, "int"):
        return int(value)
    if target_type in (float, "float"):
        return float(value)
    if target_type in (Path, "Path"):
        return Path(value).expanduser()
    return str(value) if not isinstance(value, str) else value


def _apply(obj: Any, values: dict[str, Any], prefix: str, env: dict[str, str]) -> None:
    for f in dataclasses.fields(obj):
        current = getattr(obj, f.name)
        if dataclasses.is_dataclass(current):
            _apply(current, values.get(f.name, {}) or {}, f"{prefix}{f.name.upper()}_", env)
            continue
        env_name = f"{prefix}{f.name.upper()}"
        if f.name in values:
            setattr(obj, f.name, _named(values[f.name], f.type, f"{f.name} in onestack.toml"))
        if env_name in env:
            setattr(obj, f.name, _named(env[env_name], f.type, env_name))


def _named(value: Any, target_type: Any, name: str) -> Any:
    """``_coerce``, with a ValueError that names the setting (one line for the user)."""
    try:
        return _coerce(value, target_type)
    except (TypeError, ValueError):
        kind = {"int": "an integer", "float": "a number"}.get(getattr(target_type, "__name__", str(target_type)),
                                                             str(target_type))
        raise ValueError(f"{name}={value!r}: not {kind}") from None


def load_settings(
    state_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Build the settings: defaults < state-dir file < environment < overrides."""
    env = dict(os.environ) if env is None else env
    settings = Settings()
    if state_dir is None and "ONESTACK_STATE_DIR" in env:
        state_dir = env["ONESTACK_STATE_DIR"]
    if state_dir is not None:
        settings.state_dir = Path(state_dir).expanduser()
    settings.state_dir = settings.state_dir.absolute()
    conf = settings.state_dir / "onestack.toml"
    file_values: dict[str, Any] = {}
    if conf.exists():
        import tomllib

        file_values = tomllib.loads(conf.read_text())
    file_values.pop("state_dir", None)
    _apply(settings, file_values, "ONESTACK_", {k: v for k, v in env.items() if k != "ONESTACK_STATE_DIR"})
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        target: Any = settings
        parts = key.split(".")
        for part in parts[:-1]:
            target = getattr(target, part)
        setattr(target, parts[-1], value)
    return settings
