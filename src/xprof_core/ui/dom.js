// Building DOM nodes from code: h("tag.class", {attrs}, ...children). Text is always set as
// text (never parsed as HTML), so data from profiles cannot inject markup.

/**
 * Create an element. `spec` is "tag", "tag.class1.class2" or "tag#id.class".
 * Attributes: `class`, `text`, `dataset` (object), `on<event>` (listener), booleans
 * (true sets an empty attribute, false/null/undefined leaves it out), anything else via setAttribute.
 */
export function h(spec, attrs = {}, ...children) {
  const [tagAndId, ...classes] = spec.split(".");
  const [tag, id] = tagAndId.split("#");
  const el = document.createElement(tag || "div");
  if (id) el.id = id;
  if (classes.length) el.classList.add(...classes);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.classList.add(...String(value).split(/\s+/).filter(Boolean));
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value" && "value" in el) el.value = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings, numbers, nested arrays; null/false skipped). */
export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace every child of `el`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
