// Intelligent Server Selection's ranking, as townhall.client.selection.rank does it.
//
// Pure: probes in, the order to try servers in out. A probe is {server: {name, zone},
// reachable, rtt (ms), load: {participants, capacity} | null}. Reachable servers come
// first, then those of the preferred zone (the caller's, else "internal" when any internal
// server answered, for only an inside user reaches one, else "dmz"), then the less loaded
// by tenths of capacity (a full server after every one with room, an unknown load in the
// middle), then the shorter round trip; ties keep the ticket's order.

function bucket(probe) {
  if (!probe.load) return 5;
  const { participants, capacity } = probe.load;
  if (capacity === 0) return 0;
  if (participants >= capacity) return 11;
  return Math.min(10, Math.floor((participants / capacity) * 10));
}

export function preferredZone(probes, zone = null) {
  if (zone) return zone;
  return probes.some((p) => p.reachable && p.server.zone === "internal") ? "internal" : "dmz";
}

/** The probes best first: the order to try servers in. */
export function rank(probes, zone = null) {
  const preferred = preferredZone(probes, zone);
  const key = (p, i) =>
    p.reachable ? [0, p.server.zone === preferred ? 0 : 1, bucket(p), p.rtt ?? Infinity, i] : [1, 0, 0, 0, i];
  return probes
    .map((p, i) => [key(p, i), p])
    .sort(([a], [b]) => {
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
      return 0;
    })
    .map(([, p]) => p);
}
