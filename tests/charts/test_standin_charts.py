"""The real node's stand-in charts (harness/e2e/standin_charts/) run the images `make images` builds, under
the pinned charts' names: a stand-in naming an image nobody builds would leave its pods pulling forever
on a node that reaches no registry."""

from __future__ import annotations

import re

import images
import pytest
import standin_charts
from cluster import charts

# Image references in the templates: `image:` fields, operator flags, the Prometheus resource's image.
IMAGE_REFERENCE = re.compile(r"(?:image: |-reloader=)([\w.-]+(?:/[\w.-]+)+:[\w.-]+|[\w.-]+/[\w.-]+:[\w.-]+)")


def _normalized(reference: str) -> str:
    """As containerd names it: docker.io's images with their registry, its official ones under library/."""
    name, _, tag = reference.rpartition(":")
    parts = name.split("/")
    if "." not in parts[0]:
        parts = ["docker.io", *(["library"] if len(parts) == 1 else []), *parts]
    elif parts[0] == "docker.io" and len(parts) == 2:
        parts.insert(1, "library")
    return f"{'/'.join(parts)}:{tag}"


STANDINS = sorted(path.name for path in standin_charts.STANDINS.iterdir())


@pytest.mark.parametrize("chart", STANDINS)
def test_a_stand_in_runs_only_images_that_make_images_builds(chart: str) -> None:
    text = "".join(t.read_text() for t in (standin_charts.STANDINS / chart / "templates").iterdir())
    referenced = {_normalized(r) for r in IMAGE_REFERENCE.findall(text)}
    assert referenced, f"{chart}'s stand-in names no image"
    built = {images.IMAGES[name] for name in images.ADDONS}
    assert referenced <= built, f"{chart}'s stand-in names images nobody builds: {referenced - built}"


def test_each_stand_in_stands_for_a_pinned_chart() -> None:
    assert set(STANDINS) <= {chart.name for chart in charts.ALL}


def test_the_normalized_names_are_containerds() -> None:
    assert _normalized("jaegertracing/jaeger:2.14.1") == "docker.io/jaegertracing/jaeger:2.14.1"
    assert _normalized("docker.io/traefik:v3.6.0") == "docker.io/library/traefik:v3.6.0"
    assert _normalized("quay.io/prometheus/prometheus:v3.10.0") == "quay.io/prometheus/prometheus:v3.10.0"
