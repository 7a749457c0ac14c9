"""Plugin machinery: discovery and isolation, the component registry, specs, typed hook calls."""
