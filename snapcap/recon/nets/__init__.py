"""Deep reconstruction networks: snapcap's unfolding net (``unfold``) and the published ones
(BIRNAT, STFormer, EfficientSCI; :mod:`snapcap.recon.nets.registry`)."""

from snapcap.recon.nets.registry import (
    NETS,
    NetEntry,
    create_net,
    infer_config,
    is_colour,
    list_nets,
    load_checkpoint,
    net_config,
    net_entry,
    parameter_count,
    read_state_dict,
)

__all__ = [
    "NETS",
    "NetEntry",
    "create_net",
    "infer_config",
    "is_colour",
    "list_nets",
    "load_checkpoint",
    "net_config",
    "net_entry",
    "parameter_count",
    "read_state_dict",
]
