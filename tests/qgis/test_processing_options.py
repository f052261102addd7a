"""Processing parameters are generated from ``core.options``: every option appears, typed, and reads back.

Why: the CLI, Processing and the dock must offer the same options with the
same defaults and limits. These tests walk the options dataclasses' fields,
so an option added to ``core/options.py`` is checked here without a new test,
and a published parameter name (README, models, batch files) that disappears
fails here.
"""

from __future__ import annotations

from typing import Any, Dict

import pytest

#: algorithm -> (options class, parameters published before the options existed)
ALGORITHMS = {
    "superresolve": ("SuperResolveOptions", {"INPUT", "REVISITS", "BAND", "BANDS_ARE_DATES", "CHECKPOINT", "EXTENT",
                                             "DEVICE", "TILE", "ANCHOR", "OUTPUT"}),
    "segment": ("SegmentOptions", {"INPUT", "BAND", "BUILDINGS", "ROADS", "THRESHOLD", "DEVICE", "OUTPUT_PROB",
                                   "OUTPUT_MASK", "OUTPUT_VECTORS"}),
    "trustmap": ("TrustOptions", {"INPUT", "REVISITS", "BAND", "THRESHOLD", "OUTPUT"}),
    "evaluate": ("EvaluateOptions", {"CHECKPOINT", "DATA", "SPLIT", "SEG_BUILDINGS", "SEG_ROADS", "MAX_SCENES",
                                     "DEVICE", "OUTPUT_JSON"}),
    "finetunearea": ("AreaOptions", {"REVISITS", "BAND", "BUILDINGS", "ROADS", "CHECKPOINT", "SEG_BUILDINGS",
                                     "SEG_ROADS", "EPOCHS", "TILE", "SAMPLES", "DEVICE", "OUT_DIR"}),
    "stack": ("StackOptions", {"INPUTS", "LAYERS", "EXTENT", "FRAMES", "SCL_NODATA", "OUTPUT"}),
    "compare": ("CompareOptions", {"BASELINE", "TASKDRIVEN", "REFERENCE", "BUILDINGS", "ROADS", "SEG_BUILDINGS",
                                   "SEG_ROADS", "TRUST", "DEVICE"}),
}


def _algorithm(provider: Any, name: str) -> Any:
    alg = provider.algorithm(name)
    assert alg is not None, name
    return alg


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_option_is_a_parameter_and_published_names_stay(provider, qh, name):
    from qgis.core import (
        QgsProcessingParameterBand,
        QgsProcessingParameterBoolean,
        QgsProcessingParameterDefinition,
        QgsProcessingParameterEnum,
        QgsProcessingParameterNumber,
        QgsProcessingParameterString,
    )

    import core.options as options_mod

    cls_name, published = ALGORITHMS[name]
    cls = getattr(options_mod, cls_name)
    alg = _algorithm(provider, name)
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert published <= set(params), sorted(published - set(params))
    area = qh.ui("processing.area")
    skipped = area.EXCLUDE if name == "finetunearea" else ()
    expected = {"bool": QgsProcessingParameterBoolean, "int": QgsProcessingParameterNumber,
                "float": QgsProcessingParameterNumber, "choice": QgsProcessingParameterEnum}
    for f, meta in options_mod.option_fields(cls):
        pname = options_mod.processing_name(f, meta)
        if pname is None or meta.kind == "extent" or f.name in skipped:
            assert pname not in params or pname == "EXTENT", f.name
            continue
        param = params.get(pname)
        assert param is not None, f"{cls_name}.{f.name} has no parameter {pname}"
        if meta.kind in expected:
            assert isinstance(param, expected[meta.kind]), (f.name, type(param).__name__)
        elif meta.kind == "band":
            assert isinstance(param, (QgsProcessingParameterBand, QgsProcessingParameterString)), f.name
        advanced = bool(param.flags() & QgsProcessingParameterDefinition.FlagAdvanced)
        assert advanced == meta.advanced, f.name
        assert param.help() == meta.help
        if meta.kind == "choice":
            assert param.options() == [str(c) for c in meta.choices]
            assert param.defaultValue() == list(meta.choices).index(f.default)
        elif meta.kind in ("int", "float"):
            assert param.defaultValue() == (0 if f.default is None else f.default), f.name
            if meta.maximum is not None:
                assert param.maximum() == meta.maximum
        elif meta.kind == "bool":
            assert param.defaultValue() == f.default


def _read(provider: Any, qh: Any, name: str, cls_name: str, parameters: Dict[str, Any], **extra: Any) -> Any:
    from qgis.core import QgsProcessingContext

    import core.options as options_mod

    base = qh.ui("processing.base")
    alg = _algorithm(provider, name)
    return base.options_from_parameters(getattr(options_mod, cls_name), alg, parameters, QgsProcessingContext(),
                                        **extra)


def test_parameters_read_back_into_the_options(provider, qh, scene_files):
    from qgis.core import QgsProcessingException

    from core.options import SegmentOptions, StackOptions, SuperResolveOptions, TrustOptions

    first = str(scene_files["revisits"][0])
    # nothing given: exactly the dataclass defaults
    assert _read(provider, qh, "superresolve", "SuperResolveOptions", {"INPUT": first}) == SuperResolveOptions()
    opts = _read(provider, qh, "superresolve", "SuperResolveOptions",
                 {"INPUT": first, "BAND": 1, "TILE": 0, "OVERLAP": 12, "DEVICE": 1, "ANCHOR": False, "TRUST": True},
                 extent=(500000.0, 5999700.0, 500200.0, 6000000.0))
    assert (opts.tile, opts.overlap, opts.device, opts.anchor, opts.trust) == (None, 12, "cuda", False, True)
    assert opts.extent == (500000.0, 5999700.0, 500200.0, 6000000.0)
    seg = _read(provider, qh, "segment", "SegmentOptions", {"INPUT": first, "THRESHOLD": 0.3, "SUPPORTED_ONLY": True})
    assert seg == SegmentOptions(threshold=0.3, supported_only=True)
    # the trust map's band is a number or a name of the revisits; 0 or nothing keeps "the recorded one"
    for value, band in ((None, None), ("0", None), ("B8", "B8"), (2, 2)):
        trust = _read(provider, qh, "trustmap", "TrustOptions", {"INPUT": first, "BAND": value})
        assert trust == TrustOptions(band=band), value
    stack = _read(provider, qh, "stack", "StackOptions", {"FRAMES": 4, "SCL_NODATA": "3, 8,9", "BANDS": "B08",
                                                          "BASELINE": 2})
    assert stack == StackOptions(frames=4, scl_nodata=(3, 8, 9), bands=("B08",), baseline="04.00+")
    with pytest.raises(QgsProcessingException, match="12 is outside 0..11"):
        _read(provider, qh, "stack", "StackOptions", {"SCL_NODATA": "3,12"})
    area = _read(provider, qh, "finetunearea", "AreaOptions", {"EPOCHS": 3, "SAMPLES": 16, "DEVICE": 1, "LR": 0})
    assert (area.epochs, area.samples_per_epoch, area.device, area.lr) == (3, 16, "cpu", None)
    # a value the options refuse comes back as Processing's error, worded by the options
    with pytest.raises(QgsProcessingException, match="tile"):
        _read(provider, qh, "superresolve", "SuperResolveOptions", {"INPUT": first, "TILE": 5})

