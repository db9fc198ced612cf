// Numbers and times the way an operator reads them: "3 h 12 min", "12.3 ms", "21:40:03".

const clock = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const stamp = new Intl.DateTimeFormat("en-GB", {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

// A time of day (local), from an ISO string, epoch seconds or epoch nanoseconds.
export function time(value) {
  return clock.format(toDate(value));
}

export function dateTime(value) {
  return stamp.format(toDate(value));
}

function toDate(value) {
  if (typeof value === "number") {
    return new Date(value > 1e15 ? value / 1e6 : value > 1e11 ? value : value * 1000);
  }
  return new Date(value);
}

// A span of time in words: 42 s, 3 min 5 s, 2 h 7 min, 3 d 4 h.
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 100) return `${Math.round(value)} ms`;
  return `${value.toFixed(1)} ms`;
}

// A rate or a count: whole numbers as they are, small ones with two decimals.
export function number(value) {
  if (value === null || value === undefined) return "–";
  if (Number.isInteger(value) || Math.abs(value) >= 100) return String(Math.round(value));
  return value.toFixed(Math.abs(value) >= 10 ? 1 : 2);
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

// "2 instances", "1 instance".
export function plural(count, word, many = `${word}s`) {
  return `${count} ${count === 1 ? word : many}`;
}
