// Pages are addressed by the URL fragment (#/sagas?status=RUNNING, #/traces/<id>): the
// gateway serves one index at /console for all of them, and back/forward work as usual.

export function go(path) {
  location.hash = path;
}

// The current route: {path: "/sagas", query: URLSearchParams}.
export function here() {
  const raw = location.hash.startsWith("#/") ? location.hash.slice(1) : "/";
  const mark = raw.indexOf("?");
  return {
    path: mark < 0 ? raw : raw.slice(0, mark),
    query: new URLSearchParams(mark < 0 ? "" : raw.slice(mark + 1)),
  };
}

export function setTitle(text) {
  document.title = text ? `${text} · Mercato console` : "Mercato console";
}
