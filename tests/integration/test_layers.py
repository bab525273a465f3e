"""Layers: publish, get, list, delete; a function sees its layers under /opt, in order."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, invoke_json, make_zip, unique
from shapes import assert_shape


def test_layer_lifecycle(lam):
    name = unique("layer")
    data = make_zip({"python/helper_mod.py": "VALUE = 1\n"})
    v1 = lam.publish_layer_version(
        LayerName=name,
        Content={"ZipFile": data},
        CompatibleRuntimes=["python3.11"],
        Description="first",
    )
    assert_shape("lambda", "PublishLayerVersion", v1)
    assert v1["Version"] == 1 and v1["LayerVersionArn"].endswith(f":layer:{name}:1")
    v2 = lam.publish_layer_version(LayerName=name, Content={"ZipFile": data})
    assert v2["Version"] == 2
    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert_shape("lambda", "GetLayerVersion", got)
    assert got["Content"]["CodeSize"] == len(data)
    by_arn = lam.get_layer_version_by_arn(Arn=v2["LayerVersionArn"])
    assert by_arn["Version"] == 2
    versions = lam.list_layer_versions(LayerName=name)
    assert_shape("lambda", "ListLayerVersions", versions)
    assert [v["Version"] for v in versions["LayerVersions"]] == [2, 1]
    layers = lam.list_layers()
    assert_shape("lambda", "ListLayers", layers)
    mine = [la for la in layers["Layers"] if la["LayerName"] == name]
    assert mine[0]["LatestMatchingVersion"]["Version"] == 2
    only_py = lam.list_layer_versions(LayerName=name, CompatibleRuntime="python3.11")
    assert [v["Version"] for v in only_py["LayerVersions"]] == [1]
    lam.delete_layer_version(LayerName=name, VersionNumber=1)
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Numbers are never reused.
    assert lam.publish_layer_version(LayerName=name, Content={"ZipFile": data})["Version"] == 3


def test_function_sees_layers_in_order_under_opt(lam):
    first = lam.publish_layer_version(
        LayerName=unique("l1"),
        Content={
            "ZipFile": make_zip(
                {"python/shared.py": "WHO = 'first'\n", "python/only_first.py": "X = 1\n"}
            )
        },
    )["LayerVersionArn"]
    second = lam.publish_layer_version(
        LayerName=unique("l2"),
        Content={"ZipFile": make_zip({"python/shared.py": "WHO = 'second'\n"})},
    )["LayerVersionArn"]
    name = unique("uses-layers")
    code = (
        "import shared, only_first, os\n"
        "def handler(e, c):\n"
        "    opt = os.environ.get('FIREBOX_OPT_DIR', '/opt')\n"
        "    return {'who': shared.WHO, 'x': only_first.X,\n"
        "            'listing': sorted(os.listdir(os.path.join(opt, 'python')))}\n"
    )
    resp = lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": code})},
        Layers=[first, second],
    )
    assert [la["Arn"] for la in resp["Layers"]] == [first, second]
    body, _ = invoke_json(lam, name)
    assert body["who"] == "second" and body["x"] == 1
    assert "shared.py" in body["listing"] and "only_first.py" in body["listing"]
