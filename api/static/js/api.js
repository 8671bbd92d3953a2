// The JSON API as the dashboard calls it: the bearer token on every request, MLflow's error
// shape ({error_code, message}) as an ApiError, and 401 handed to whoever asks for the token.

const TOKEN_KEY = "trace-insights-token";
export const INSIGHTS = "/api/3.0/mlflow/traces/insights";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorized = () => {};

export function onUnauthorized(handler) {
  unauthorized = handler;
}

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

export function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

export async function call(method, path, body, signal) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "UNREACHABLE", "Trace Insights is not reachable");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      data?.error_code ?? `HTTP_${response.status}`,
      data?.message ?? (text.slice(0, 200) || response.statusText),
    );
    if (response.status === 401) unauthorized(error);
    throw error;
  }
  return data;
}

export const insights = (path, body, signal) => call("POST", `${INSIGHTS}/${path}`, body, signal);

/** What the dashboard shows of MLflow's TraceInfoV3 (RFC 3339 times, "1.5s" durations). */
export function traceFacts(info) {
  const usage = info.trace_metadata["mlflow.trace.tokenUsage"];
  const cost = info.trace_metadata["mlflow.trace.cost"];
  return {
    startMs: Date.parse(info.request_time),
    durationMs: Math.round(parseFloat(info.execution_duration) * 1000),
    totalTokens: usage ? JSON.parse(usage).total_tokens : 0,
    cost: cost ? JSON.parse(cost).total_cost : null, // MLflow's float of USD
    name: info.tags["mlflow.traceName"] ?? null,
  };
}
