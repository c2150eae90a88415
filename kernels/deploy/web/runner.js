// Runs one ONNX model with ONNX Runtime Web (the wasm execution provider) and times it.
// Called by kernels/deploy/web.py through Selenium's executeAsyncScript. Tensors cross the
// WebDriver boundary as {type, dims, b64}: the raw little-endian bytes, base64-encoded, so
// nothing is rounded through JSON numbers.
"use strict";

// Single-threaded wasm: multi-threading needs SharedArrayBuffer, hence a cross-origin
// isolated page; one thread keeps the page plain and the timings comparable across runs.
ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;
ort.env.wasm.wasmPaths = new URL("/ort/", location.href).href;
ort.env.logLevel = "error";

const TYPED = {
  float32: Float32Array, float64: Float64Array, int32: Int32Array, int64: BigInt64Array,
  uint8: Uint8Array, int8: Int8Array, bool: Uint8Array, float16: Uint16Array,
};

function decode(t) {
  const bin = atob(t.b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const Typed = TYPED[t.type];
  if (!Typed) throw new Error("unsupported input type " + t.type);
  return new ort.Tensor(t.type, new Typed(bytes.buffer), t.dims);
}

function encode(tensor) {
  const data = tensor.data;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return { type: tensor.type, dims: Array.from(tensor.dims), b64: btoa(bin) };
}

// A one-node ONNX model (Identity, float32 [1], opset 17). Its session, created before any
// model under test, pays ORT Web's one-time start (fetching and compiling the wasm binary),
// so that every model's session_ms is its own and the first model is not penalized.
const WARMUP_MODEL = "CAg6PAoQCgFhEgFiIghJZGVudGl0eRIGd2FybXVwWg8KAWESCgoICAESBAoCCAFiDwoBYhIKCggIARIECgIIAUIECgAQEQ==";

// Returns {init_ms} or {error}: the runtime's start, timed.
window.fwsurveyInit = async function () {
  try {
    const bytes = Uint8Array.from(atob(WARMUP_MODEL), (c) => c.charCodeAt(0));
    const t0 = performance.now();
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    const out = await session.run({ a: new ort.Tensor("float32", new Float32Array([1.5]), [1]) });
    const init_ms = performance.now() - t0;
    await session.release();
    if (out.b.data[0] !== 1.5) throw new Error("the warm-up model returned " + out.b.data[0]);
    return { init_ms, version: ort.env.versions.web };
  } catch (e) {
    return { error: String((e && e.message) || e) };
  }
};

// spec: {model: URL, inputs: {name: {type, dims, b64}}, repeats: n}
// Returns {outputs, output_names, session_ms, first_run_ms, latency_ms} or {error, stage}.
window.fwsurveyRun = async function (spec) {
  const result = { stage: "fetch" };
  try {
    return await runModel(spec, result);
  } catch (e) {
    return { stage: result.stage, error: String((e && e.message) || e) };
  }
};

async function runModel(spec, result) {
  const response = await fetch(spec.model);
  if (!response.ok) throw new Error("fetching the model: HTTP " + response.status);
  const model = new Uint8Array(await response.arrayBuffer());
  result.stage = "session";
  let t0 = performance.now();
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ["wasm"], graphOptimizationLevel: "all",
  });
  result.session_ms = performance.now() - t0;
  try {
    result.stage = "inputs";
    const feeds = {};
    for (const [name, t] of Object.entries(spec.inputs)) feeds[name] = decode(t);
    result.stage = "run";
    // The first run (its outputs are the ones returned) is timed apart: it includes the
    // kernels' one-time preparation, the repeats after it are the steady state.
    t0 = performance.now();
    const first = await session.run(feeds);
    result.first_run_ms = performance.now() - t0;
    result.output_names = session.outputNames.slice();
    result.outputs = session.outputNames.map((n) => encode(first[n]));
    result.latency_ms = [];
    for (let i = 0; i < spec.repeats; i++) {
      t0 = performance.now();
      await session.run(feeds);
      result.latency_ms.push(performance.now() - t0);
    }
    result.stage = "done";
    return result;
  } finally {
    await session.release();
  }
}
