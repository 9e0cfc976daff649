"""rnnaccel.hw: the Amaranth components of the accelerator."""


def check_cfg_and_weights(cfg, weights, image=None) -> None:
    """The parameter checks every weight-holding component starts with (the weights or their memory image)."""
    from ..numeric.config import Config

    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a Config, not {cfg!r}")
    if cfg.weights_in_rom and weights is None and image is None:
        raise ValueError("weights are needed when cfg.weights_in_rom is true")
