// The aggregator's JSON API (XProf's routes under data/plugin/profile/), fetched with progress.
// URLs are relative to the page, so the UI also works behind a proxy that adds a path prefix.

export const API = "data/plugin/profile";

/** An answer that is not a 2xx, or a request that never got one. */
export class ApiError extends Error {
  /**
   * @param {string} message what went wrong, in words
   * @param {number} status HTTP status (0 when the server could not be reached)
   * @param {object|null} body the JSON error body ({error, host, offset, path, ...}) when there was one
   * @param {string} url the request
   */
  constructor(message, status, body, url) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.url = url;
  }
}

/** Query string from an object; null/undefined/"" values are left out. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === "") continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function apiUrl(route, params = {}) {
  return `${API}/${route}${query(params)}`;
}

/** Tool data URL: run, tool (the `tag` parameter), hosts (array; all hosts when empty) and tool params. */
export function dataUrl(run, tool, hosts, params = {}, route = "data") {
  return apiUrl(route, { run, tag: tool, hosts: hosts && hosts.length ? hosts.join(",") : null, ...params });
}

/**
 * Fetch and parse JSON, reporting progress as bytes arrive.
 * @param {string} url
 * @param {{signal?: AbortSignal, onProgress?: (bytes: number, total: number|null) => void}} options
 * @returns {Promise<any>} the parsed body; throws ApiError on HTTP or network errors
 */
export async function fetchJson(url, { signal, onProgress } = {}) {
  const text = await fetchText(url, { signal, onProgress });
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(`the server's answer is not JSON (${err.message})`, 200, null, url);
  }
}

/** Fetch a body as text with progress; ApiError for non-2xx answers (with the JSON error body if any). */
export async function fetchText(url, { signal, onProgress } = {}) {
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(`could not reach the server (${err.message})`, 0, null, url);
  }
  const text = await readBody(response, signal, onProgress);
  if (!response.ok) throw errorFromResponse(response.status, response.statusText, text, url);
  return text;
}

async function readBody(response, signal, onProgress) {
  // Content-Length is the compressed size when the body is gzipped; then no total is known.
  const encoded = response.headers.get("Content-Encoding");
  const length = Number(response.headers.get("Content-Length"));
  const total = !encoded && length > 0 ? length : null;
  if (!response.body || !onProgress) return response.text();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parts = [];
  let bytes = 0;
  for (;;) {
    if (signal && signal.aborted) {
      reader.cancel();
      throw new DOMException("aborted", "AbortError");
    }
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    parts.push(decoder.decode(value, { stream: true }));
    onProgress(bytes, total);
  }
  parts.push(decoder.decode());
  return parts.join("");
}

/** An ApiError from a status and body text; the body's JSON `error` becomes the message. */
export function errorFromResponse(status, statusText, text, url) {
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  const message = body && typeof body.error === "string"
    ? body.error
    : `HTTP ${status} ${statusText || ""}`.trim() + (text ? `: ${text.slice(0, 300)}` : "");
  return new ApiError(message, status, body, url);
}
