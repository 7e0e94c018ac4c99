"""Neural map localizer: encoders, BEV lifting, rectification, matcher, tile store."""
