// The console's map: the shipped province outlines as the base layer (no tiles, no CDN), the
// filtered reports as circles coloured by status, outlined red when urgent.
(function () {
  "use strict";
  var el = document.getElementById("map");
  var query = el.getAttribute("data-query") || "";
  var map = L.map(el, { preferCanvas: true }).setView([13.5, 100.9], 6);
  var colours = { new: "#d69e2e", acknowledged: "#3182ce", on_site: "#805ad5", reopened: "#dd6b20", transferred: "#718096", closed: "#38a169" };
  fetch("/console/provinces.geojson").then(function (r) { return r.json(); }).then(function (g) {
    L.geoJSON(g, { style: { color: "#4a5568", weight: 1, fillColor: "#edf2f7", fillOpacity: 0.6 } }).addTo(map).bringToBack();
  });
  fetch("/console/map.json?" + query, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (d) {
    var bounds = [];
    var f = {};
    d.fields.forEach(function (name, i) { f[name] = i; });
    d.points.forEach(function (row) {
      var p = { id: row[f.id], ref: row[f.ref], lat: row[f.lat], lon: row[f.lon], status: row[f.status], urgent: !!row[f.urgent] };
      var m = L.circleMarker([p.lat, p.lon], {
        radius: 7, weight: p.urgent ? 3 : 1, color: p.urgent ? "#c53030" : "#1a202c",
        fillColor: colours[p.status] || "#718096", fillOpacity: 0.9
      }).addTo(map);
      var a = document.createElement("a");
      a.href = "/console/reports/" + p.id;
      a.textContent = p.ref;
      m.bindPopup(a);
      bounds.push([p.lat, p.lon]);
    });
    if (bounds.length) { map.fitBounds(bounds, { maxZoom: 13, padding: [20, 20] }); }
    el.setAttribute("data-points", String(d.points.length));
  });
})();
