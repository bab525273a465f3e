"""The Ruby runtimes end to end through boto3: handler forms, the context, gems vendored in
the zip and from a layer, errors and Init errors in AWS's shape, puts and Logger."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from conftest import ROLE, invoke_json, make_zip, unique
from firebox.runtime.runtimes import available_runtimes

pytestmark = pytest.mark.skipif(
    "ruby3.2" not in available_runtimes(), reason="needs Ruby on the host (apt-get install ruby)"
)

APP = """
require 'logger'
require 'json'

LOGGER = Logger.new($stdout)
INIT_SAW = ENV['AWS_LAMBDA_FUNCTION_NAME']
COUNT = [0]

def handler(event:, context:)
  COUNT[0] += 1
  puts "hello from ruby #{event['n']}"
  $stderr.puts 'to stderr'
  LOGGER.info('via logger')
  {
    'aws_request_id' => context.aws_request_id,
    'function_name' => context.function_name,
    'function_version' => context.function_version,
    'invoked_function_arn' => context.invoked_function_arn,
    'memory_limit_in_mb' => context.memory_limit_in_mb,
    'log_group_name' => context.log_group_name,
    'log_stream_name' => context.log_stream_name,
    'remaining' => context.get_remaining_time_in_millis,
    'deadline_ms' => context.deadline_ms,
    'client_context' => context.client_context,
    'identity' => context.identity,
    'init_saw' => INIT_SAW,
    'my_var' => ENV['MY_VAR'],
    'child' => `echo $MY_VAR`.strip,
    'cwd' => Dir.pwd,
    'count' => COUNT[0],
    'context_class' => context.class.name
  }
end

def fails(event:, context:)
  raise ArgumentError, "bad #{event['x']}" if event['x']
  COUNT[0] += 1
  "ok #{COUNT[0]}"
end

class MyError < StandardError; end

def custom(event:, context:)
  raise MyError, 'custom failure'
end

def no_method(event:, context:)
  COUNT[0] += 1
  nil.upcase if event['boom']
  "count #{COUNT[0]}"
end

def raw(event:, context:)
  StringIO.new("raw body #{event}")
end

module Outer
  class Inner
    def self.run(event:, context:)
      "class method #{event['x']}"
    end
  end
end
"""

GEMSPEC = """Gem::Specification.new do |s|
  s.name = "{name}"
  s.version = "0.1.0"
  s.summary = "a test gem"
  s.authors = ["firebox"]
  s.files = ["lib/{name}.rb"]
  s.require_paths = ["lib"]
end
"""


def gem_files(prefix: str, name: str, text: str) -> dict[str, str]:
    """A gem as installed: its files under gems/, its spec under specifications/."""
    return {
        f"{prefix}/gems/{name}-0.1.0/lib/{name}.rb": text,
        f"{prefix}/specifications/{name}-0.1.0.gemspec": GEMSPEC.replace("{name}", name),
    }


def ruby_function(lam: Any, files: dict[str, str], handler: str, **kwargs: Any) -> str:
    name = unique("ruby")
    lam.create_function(
        FunctionName=name,
        Runtime=kwargs.pop("Runtime", "ruby3.2"),
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": make_zip(files)},
        **kwargs,
    )
    return name


def _tail(resp: dict[str, Any]) -> str:
    return base64.b64decode(resp["LogResult"]).decode()


@pytest.mark.parametrize("runtime", ["ruby3.2", "ruby3.3"])
def test_context_environment_and_logs(lam: Any, runtime: str) -> None:
    name = ruby_function(
        lam,
        {"app.rb": APP},
        "app.handler",
        Runtime=runtime,
        MemorySize=256,
        Timeout=9,
        Environment={"Variables": {"MY_VAR": "mine"}},
    )
    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    out, resp = invoke_json(lam, name, {"n": 5}, LogType="Tail", ClientContext=cc)
    assert "FunctionError" not in resp, out
    rid = resp["ResponseMetadata"]["RequestId"]
    assert out["aws_request_id"] == rid
    assert out["function_name"] == name and out["function_version"] == "$LATEST"
    assert out["invoked_function_arn"].endswith(f":function:{name}")
    assert out["memory_limit_in_mb"] == "256"  # a string, as in AWS's Ruby runtime
    assert out["log_group_name"] == f"/aws/lambda/{name}"
    assert "[$LATEST]" in out["log_stream_name"]
    assert 7000 < out["remaining"] <= 9000 and out["deadline_ms"] > 10**12
    assert out["client_context"] == {"custom": {"k": "v"}}
    assert out["identity"] is None
    assert out["init_saw"] == name  # top-level code ran in Init with the function's env
    assert (out["my_var"], out["child"]) == ("mine", "mine")
    assert out["context_class"] == "LambdaContext"
    tail = _tail(resp)
    assert "hello from ruby 5" in tail and "to stderr" in tail
    logger_line = next(line for line in tail.splitlines() if "via logger" in line)
    # Lambda's Ruby Logger format: the request id where the program name would be.
    assert logger_line.startswith("I, [") and f"INFO {rid} -- : via logger" in logger_line
    assert "Init Duration" in tail


def test_class_method_handler_and_raw_responses(lam: Any) -> None:
    name = ruby_function(lam, {"app.rb": APP}, "app.Outer::Inner.run")
    assert invoke_json(lam, name, {"x": 3})[0] == "class method 3"
    name = ruby_function(lam, {"app.rb": APP}, "app.raw")
    resp = lam.invoke(FunctionName=name, Payload=b'{"a":1}')
    assert resp["Payload"].read() == b'raw body {"a"=>1}'


def test_vendored_gems_and_gems_from_a_layer(lam: Any) -> None:
    layer_files = {
        **gem_files("ruby/gems/3.2.0", "layergem", "module Layergem\n  V = 'from layer'\nend\n"),
        "ruby/lib/layerlib.rb": "module Layerlib\n  V = 'from ruby/lib'\nend\n",
    }
    layer = lam.publish_layer_version(
        LayerName=unique("rubylayer"), Content={"ZipFile": make_zip(layer_files)}
    )["LayerVersionArn"]
    files = {
        "app.rb": (
            "require 'vendored'\nrequire 'layergem'\nrequire 'layerlib'\n"
            "def handler(event:, context:)\n"
            "  [Vendored::V, Layergem::V, Layerlib::V, Gem.loaded_specs.keys.sort,\n"
            "   ENV['GEM_PATH'].split(':').first(3)]\nend\n"
        ),
        **gem_files(
            "vendor/bundle/ruby/3.2.0", "vendored", "module Vendored\n  V = 'vendored'\nend\n"
        ),
    }
    name = ruby_function(lam, files, "app.handler", Layers=[layer])
    out, resp = invoke_json(lam, name)
    assert "FunctionError" not in resp, out
    assert out[:3] == ["vendored", "from layer", "from ruby/lib"]
    assert {"vendored", "layergem"} <= set(out[3])
    task = out[4][0].rsplit("/vendor/", 1)[0]
    assert out[4][0] == f"{task}/vendor/bundle/ruby/3.2.0"


def test_errors_in_lambdas_shape(lam: Any) -> None:
    name = ruby_function(lam, {"app.rb": APP}, "app.fails")
    out, resp = invoke_json(lam, name, {"x": "y"}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Function<ArgumentError>"
    assert out["errorMessage"] == "bad y"
    assert len(out["stackTrace"]) == 1 and out["stackTrace"][0].endswith("in `fails'")
    assert "Error raised from handler method" in _tail(resp)
    # A StandardError leaves the environment as it was.
    assert invoke_json(lam, name)[0] == "ok 1"
    name = ruby_function(lam, {"app.rb": APP}, "app.custom")
    out, _ = invoke_json(lam, name)
    assert (out["errorType"], out["errorMessage"]) == ("Function<MyError>", "custom failure")


def test_no_method_error_ends_the_environment(lam: Any) -> None:
    # AWS's Ruby runtime treats NoMethodError and NameError as critical: it reports them,
    # then exits, and the next invoke gets a fresh environment.
    name = ruby_function(lam, {"app.rb": APP}, "app.no_method")
    assert invoke_json(lam, name)[0] == "count 1"
    out, resp = invoke_json(lam, name, {"boom": True}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Function<NoMethodError>"
    assert "upcase" in out["errorMessage"]
    assert "Critical exception from handler" in _tail(resp)
    again, resp = invoke_json(lam, name, LogType="Tail")
    assert again == "count 1" and "Init Duration" in _tail(resp)


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        ({"app.rb": APP}, "missing.handler", "Init<LoadError>", "cannot load such file"),
        ({"app.rb": "def handler(event:, context:\n"}, "app.handler", "Init<SyntaxError>", ""),
        ({"app.rb": "raise 'init failed'\n"}, "app.handler", "Init<RuntimeError>", "init failed"),
        ({"app.rb": APP}, "apphandler", "Init<ArgumentError>", "Invalid handler"),
        ({"app.rb": APP}, "app.nothing", "Function<NoMethodError>", "nothing"),
    ],
)
def test_init_errors(
    lam: Any, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    name = ruby_function(lam, files, handler)
    out, resp = invoke_json(lam, name, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == error_type
    assert message in out["errorMessage"]
    assert isinstance(out["stackTrace"], list)


def test_rubyopt_starts_a_ruby_for_the_function(lam: Any) -> None:
    # Ruby reads RUBYOPT when it starts: such a function cannot use a pooled process.
    files = {
        "preload.rb": "$PRELOADED = 'preloaded by RUBYOPT'\n",
        "app.rb": "def handler(event:, context:)\n  $PRELOADED\nend\n",
    }
    name = ruby_function(
        lam, files, "app.handler", Environment={"Variables": {"RUBYOPT": "-r./preload"}}
    )
    out, resp = invoke_json(lam, name)
    assert "FunctionError" not in resp, out
    assert out == "preloaded by RUBYOPT"
