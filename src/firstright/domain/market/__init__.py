"""The market: GPU offers from public cloud catalogs and model-endpoint token prices."""
