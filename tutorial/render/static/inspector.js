/* The trace inspector: step through a sequence diagram, arrow by arrow, with every byte
 * of each arrow named.
 *
 * One script for the three places that show it: the notebook widget (anywidget), the
 * static site and the browser chat's live panel. It lays out a step-through document
 * that Python made (tutorial/render/stepper.py): the diagrams (SVG whose row k is the
 * class seq_row_k), the rows of each view, and every event's annotated bytes, links
 * and sentence. Nothing here decodes a byte; it only shows what the document says.
 *
 *   const inspector = TraceInspector.mount(element, doc, {view, row, onChange});
 *   inspector.show("frames", 3);   // view name, row index (k)
 *
 * A page that draws the diagram itself (the browser chat's live panel) passes
 * {diagram: element}: the inspector then highlights and listens there, and
 * TraceInspector.prepare(svg), rowOf(target), rowAt(element, x, y) let the page find
 * the row a click meant before any inspector is mounted.
 *
 * Text from the document is always set with textContent; only the SVG (drawn by
 * graphviz from escaped labels) is inserted as markup.
 */
(function (root) {
  "use strict";

  var LAYER_NAMES = {
    tcp: "TCP", http: "HTTP", ws: "WebSocket frame", eio: "Engine.IO packet",
    sio: "Socket.IO packet", app: "server step",
  };
  var PLAY_MS = 1500;

  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") el.textContent = value;
        else if (key === "className") el.className = value;
        else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), value);
        else el.setAttribute(key, value === true ? "" : value);
      });
    }
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) {
        el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return el;
  }

  function rowOf(element) {
    var node = element;
    while (node && node.getAttribute) {
      var cls = node.getAttribute("class") || "";
      var m = /(?:^|\s)seq_row_(\d+)(?:\s|$)/.exec(cls);
      if (m) return parseInt(m[1], 10);
      node = node.parentNode;
    }
    return null;
  }

  function rowAt(container, x, y) {
    // A click between the lines of a label, or just beside an arrow: the row whose
    // box holds the point (the smallest one).
    var best = null, area = Infinity;
    Array.prototype.forEach.call(container.querySelectorAll("svg .seq_row"), function (g) {
      var r = g.getBoundingClientRect();
      if (x >= r.left - 4 && x <= r.right + 4 && y >= r.top - 4 && y <= r.bottom + 4) {
        var a = (r.width + 8) * (r.height + 8);
        if (a < area) { area = a; best = rowOf(g); }
      }
    });
    return best;
  }

  function addHitAreas(svg, tries) {
    // Labels and notes get a transparent box behind their text, so that a click
    // anywhere on them (between lines, between words) selects the arrow.
    var nodes = svg.querySelectorAll("g.node.seq_row");
    if (!nodes.length) return;
    var box = nodes[0].getBBox ? nodes[0].getBBox() : null;
    if (!box || (!box.width && !box.height)) {
      if (tries < 50) setTimeout(function () { addHitAreas(svg, tries + 1); }, 100);
      return;
    }
    Array.prototype.forEach.call(nodes, function (g) {
      if (g.querySelector("rect.ti-hit")) return;
      var b = g.getBBox();
      var rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      rect.setAttribute("class", "ti-hit");
      rect.setAttribute("x", String(b.x - 2));
      rect.setAttribute("y", String(b.y - 2));
      rect.setAttribute("width", String(b.width + 4));
      rect.setAttribute("height", String(b.height + 4));
      g.insertBefore(rect, g.firstChild);
    });
  }

  /* Make a diagram's rows easy to click (once per SVG): a wider, invisible twin of
   * each arrow segment (a thin line is hard to hit) and a box behind each label. */
  function prepare(svg) {
    if (!svg || svg.getAttribute("data-ti-ready")) return;
    svg.setAttribute("data-ti-ready", "1");
    Array.prototype.forEach.call(svg.querySelectorAll("g.edge.seq_row path"), function (p) {
      var twin = p.cloneNode(false);
      twin.setAttribute("class", "ti-hit");
      p.parentNode.insertBefore(twin, p);
    });
    addHitAreas(svg, 0);
  }

  function mount(el, doc, options) {
    options = options || {};
    var state = { view: null, row: 0, event: null, timer: null };
    var views = {};
    doc.views.forEach(function (v) {
      var steppable = [];
      v.rows.forEach(function (r, k) { if (r.events.length) steppable.push(k); });
      views[v.name] = { spec: v, steppable: steppable };
    });

    el.classList.add("trace-inspector", "ti-mounted");
    el.textContent = "";
    el.setAttribute("tabindex", "0");

    var prev = h("button", { type: "button", className: "ti-prev", title: "previous arrow (←)",
      "aria-label": "previous arrow", text: "◀" });
    var next = h("button", { type: "button", className: "ti-next", title: "next arrow (→)",
      "aria-label": "next arrow", text: "▶" });
    var play = h("button", { type: "button", className: "ti-play", title: "play / pause",
      text: "play" });
    var slider = h("input", { type: "range", className: "ti-slider", min: "0", max: "0",
      value: "0", "aria-label": "arrow" });
    var counter = h("span", { className: "ti-counter" });
    var hexBox = h("input", { type: "checkbox", className: "ti-hex-toggle",
      onchange: function () { el.classList.toggle("ti-show-hex", hexBox.checked); } });
    var hexLabel = h("label", { className: "ti-hex-label", title: "show text fields as hex bytes" },
      [hexBox, " hex"]);
    var tabs = h("span", { className: "ti-views", role: "tablist" });
    doc.views.forEach(function (v) {
      tabs.appendChild(h("button", { type: "button", className: "ti-view", "data-view": v.name,
        title: v.description, text: v.name, onclick: function () { switchView(v.name); } }));
    });
    if (doc.views.length < 2) tabs.hidden = true;  // one view: nothing to switch to
    var bar = h("div", { className: "ti-bar" }, [prev, next, play, slider, counter, hexLabel, tabs]);
    var sentence = h("p", { className: "ti-sentence", "aria-live": "polite" });
    // options.diagram: an element of the page that already shows the view's SVG (the
    // live panel draws its own); the inspector then only highlights and listens there.
    var external = options.diagram || null;
    var diagram = external || h("div", { className: "ti-diagram" });
    if (external) external.classList.add("ti-linked");
    if (options.height && !external) diagram.style.maxHeight = options.height + "px";
    var panel = h("div", { className: "ti-panel" });
    el.appendChild(bar);
    el.appendChild(sentence);
    if (!external) el.appendChild(diagram);
    el.appendChild(panel);

    prev.addEventListener("click", function () { stop(); stepBy(-1); });
    next.addEventListener("click", function () { stop(); stepBy(1); });
    play.addEventListener("click", function () { if (state.timer) stop(); else start(); });
    slider.addEventListener("input", function () {
      stop();
      var v = views[state.view];
      go(v.steppable[parseInt(slider.value, 10)] || 0);
    });
    el.addEventListener("keydown", function (ev) {
      if (ev.target && ev.target.tagName === "INPUT") return;
      if (ev.key === "ArrowRight") { stop(); stepBy(1); ev.preventDefault(); }
      if (ev.key === "ArrowLeft") { stop(); stepBy(-1); ev.preventDefault(); }
    });
    diagram.addEventListener("click", onDiagramClick);
    function onDiagramClick(ev) {
      var k = rowOf(ev.target);
      if (k === null) k = rowAt(diagram, ev.clientX, ev.clientY);
      if (k !== null && views[state.view].spec.rows[k] && views[state.view].spec.rows[k].events.length) {
        stop();
        go(k);
      }
    }

    function fit(svg, tries) {
      // A diagram a little wider than the box is scaled down to fit; a much wider one
      // keeps its size (text stays legible) and scrolls.
      var natural = parseFloat(svg.getAttribute("width") || "0") * (96 / 72);
      var room = diagram.clientWidth - 2;
      if (!room) {
        if (tries < 50) setTimeout(function () { fit(svg, tries + 1); }, 100);
        return;
      }
      if (natural > room && room / natural >= 0.72) {
        svg.style.width = room + "px";
      }
    }

    function position() {
      return views[state.view].steppable.indexOf(state.row);
    }

    function stepBy(delta) {
      var v = views[state.view];
      var p = Math.max(0, Math.min(v.steppable.length - 1, position() + delta));
      go(v.steppable[p]);
    }

    function start() {
      var v = views[state.view];
      if (position() >= v.steppable.length - 1) go(v.steppable[0]);
      play.textContent = "pause";
      state.timer = setInterval(function () {
        if (position() >= views[state.view].steppable.length - 1) { stop(); return; }
        stepBy(1);
      }, PLAY_MS);
    }

    function stop() {
      if (state.timer) clearInterval(state.timer);
      state.timer = null;
      play.textContent = "play";
    }

    function go(k, event) {
      show(state.view, k, event);
      if (options.onChange) options.onChange(state.view, state.row, state.event);
    }

    function rowsWith(viewName, index) {
      var found = [];
      views[viewName].spec.rows.forEach(function (r, k) {
        if (r.events.indexOf(index) >= 0) found.push(k);
      });
      return found;
    }

    function nearestRow(viewName, index) {
      // The row that shows this event, or one of its layers, or the last row before it.
      var direct = rowsWith(viewName, index);
      if (direct.length) return direct[0];
      var fam = doc.events[index] ? doc.events[index].family : [];
      for (var i = 0; i < fam.length; i++) {
        var rows = rowsWith(viewName, fam[i]);
        if (rows.length) return rows[0];
      }
      var v = views[viewName];
      var best = v.steppable.length ? v.steppable[0] : 0;
      v.steppable.forEach(function (k) {
        if (Math.min.apply(null, v.spec.rows[k].events) <= index) best = k;
      });
      return best;
    }

    function switchView(name) {
      if (!views[name]) return;
      stop();
      var k = state.event !== null ? nearestRow(name, state.event) : views[name].steppable[0];
      var keep = state.event !== null && rowsWith(name, state.event).length ? state.event : null;
      state.view = null;  // force a redraw of the diagram
      showView(name);
      go(k, keep);
    }

    function showView(name) {
      if (state.view === name) return;
      state.view = name;
      var v = views[name];
      if (!external) diagram.innerHTML = v.spec.svg;
      var svg = diagram.querySelector("svg");
      if (svg && !svg.getAttribute("data-ti-ready")) {
        prepare(svg);
        if (!external) fit(svg, 0);
      }
      slider.max = String(Math.max(0, v.steppable.length - 1));
      Array.prototype.forEach.call(tabs.children, function (b) {
        var on = b.getAttribute("data-view") === name;
        b.classList.toggle("ti-on", on);
        b.setAttribute("aria-selected", on ? "true" : "false");
      });
    }

    function show(viewName, k, event) {
      if (!views[viewName]) viewName = doc.views[0].name;
      showView(viewName);
      var v = views[viewName];
      if (v.steppable.indexOf(k) < 0) k = v.steppable.length ? v.steppable[0] : 0;
      var row = v.spec.rows[k] || { events: [] };
      state.row = k;
      state.event = (event !== undefined && event !== null && row.events.indexOf(event) >= 0) ||
        (event !== undefined && event !== null && familyOfRow(row).indexOf(event) >= 0)
        ? event : (row.events.length ? row.events[0] : null);
      var p = position();
      slider.value = String(Math.max(0, p));
      counter.textContent = v.steppable.length
        ? "arrow " + (p + 1) + " of " + v.steppable.length : "no arrows";
      prev.disabled = p <= 0;
      next.disabled = p >= v.steppable.length - 1;
      highlight(k);
      var ev = state.event !== null ? doc.events[state.event] : null;
      sentence.textContent = ev ? ev.sentence : "";
      renderPanel(row);
      el.setAttribute("data-view", viewName);
      el.setAttribute("data-row", String(k));
      el.setAttribute("data-event", state.event === null ? "" : String(state.event));
    }

    function familyOfRow(row) {
      var all = [];
      row.events.forEach(function (i) { all = all.concat(doc.events[i].family); });
      return all;
    }

    function highlight(k) {
      var svg = diagram.querySelector("svg");
      if (!svg) return;
      var current = null;
      Array.prototype.forEach.call(svg.querySelectorAll(".seq_row"), function (g) {
        var r = rowOf(g);
        g.classList.toggle("ti-current", r === k);
        g.classList.toggle("ti-future", r > k);
        if (r === k && (!current || /_(label|note)$/.test(g.id))) current = g;
      });
      if (current) scrollInto(current);
    }

    function scrollInto(target) {
      var box = diagram.getBoundingClientRect();
      var r = target.getBoundingClientRect();
      if (!box.height) return;
      var margin = 60;
      if (r.top < box.top + margin || r.bottom > box.bottom - margin) {
        diagram.scrollTop += r.top - box.top - box.height / 3;
      }
      if (r.left < box.left || r.right > box.right) {
        diagram.scrollLeft += r.left - box.left - 40;
      }
    }

    function renderPanel(row) {
      panel.textContent = "";
      if (state.event === null) return;
      if (row.events.length > 1) {
        // A fan-out (one message to several lifelines) or a folded run of events.
        var first = doc.events[row.events[0]];
        var fanout = row.events.every(function (i) {
          var e = doc.events[i];
          return e.source === first.source && e.label === first.label;
        });
        var pick = h("div", { className: "ti-fanout" }, [fanout
          ? "This arrow went to " + row.events.length + " lifelines: "
          : "This row stands for " + row.events.length + " events: "]);
        row.events.forEach(function (i, n) {
          var e = doc.events[i];
          var name = fanout ? (doc.lifelines[e.target] || e.target)
            : (n + 1) + ". " + (e.label.length > 28 ? e.label.slice(0, 27) + "…" : e.label);
          pick.appendChild(h("button", { type: "button", className: "ti-pick" + (i === state.event ? " ti-on" : ""),
            "data-index": String(i), text: name, title: e.label,
            onclick: function () { go(state.row, i); } }));
        });
        panel.appendChild(pick);
      }
      var ev = doc.events[state.event];
      ev.family.forEach(function (i) { panel.appendChild(card(i, i === state.event)); });
    }

    function viewsOf(index) {
      var out = [];
      doc.views.forEach(function (v) {
        if (v.name !== state.view && rowsWith(v.name, index).length) out.push(v.name);
      });
      return out;
    }

    function card(index, isThis) {
      var e = doc.events[index];
      var b = e.bytes;
      var who = e.source === e.target ? (doc.lifelines[e.source] || e.source)
        : (doc.lifelines[e.source] || e.source) + " → " + (doc.lifelines[e.target] || e.target);
      var links = h("span", { className: "ti-links" });
      viewsOf(index).forEach(function (name) {
        links.appendChild(h("button", { type: "button", className: "ti-link",
          "data-view": name, text: "show in " + name,
          onclick: function () { stop(); showView(name); go(nearestRow(name, index), index); } }));
      });
      var title = b ? b.title : e.label;
      var size = b ? " · " + b.length + (b.length === 1 ? " byte" : " bytes") : "";
      var head = h("header", null, [
        h("span", { className: "ti-badge ti-layer-" + e.layer, text: LAYER_NAMES[e.layer] || e.layer }),
        " ",
        h("b", { text: title }),
        h("span", { className: "ti-who", text: " " + who + size }),
        isThis ? h("span", { className: "ti-this", text: "this arrow" }) : null,
        links,
      ]);
      var body = [head];
      if (b && b.problem) body.push(h("p", { className: "ti-problem", text: "✗ " + b.problem }));
      if (b) {
        body.push(ribbon(b));
        if (b.decoded.length) {
          var table = h("table", { className: "ti-decoded" });
          b.decoded.forEach(function (pair) {
            table.appendChild(h("tr", null, [h("th", { text: pair[0] }), h("td", { text: pair[1] })]));
          });
          body.push(table);
        }
      } else {
        body.push(h("p", { className: "ti-nobytes",
          text: e.source === e.target || e.layer === "app"
            ? "No bytes: the server did this on its own." : "No bytes of its own: " + e.label + "." }));
      }
      return h("section", { className: "ti-card ti-layer-" + e.layer + (isThis ? " ti-this-card" : ""),
        "data-index": String(index), "data-layer": e.layer,
        "data-length": b ? String(b.length) : null }, body);
    }

    function ribbon(b) {
      var out = h("div", { className: "ti-ribbon", role: "list" });
      b.spans.forEach(function (s) {
        var more = s.more ? " … " + s.more + " more bytes" : "";
        var shown = [];
        if (s.bits !== null) {
          shown.push(h("div", { className: "ti-bytes", text: s.bits }));
        } else if (s.text !== null) {
          shown.push(h("div", { className: "ti-bytes ti-as-text", text: s.text + more }));
          shown.push(h("div", { className: "ti-bytes ti-as-hex", text: s.hex + more }));
        } else {
          shown.push(h("div", { className: "ti-bytes", text: s.hex + more }));
        }
        // A text field whose value is its own text says it once.
        var bare = s.value.replace(/^'/, "").replace(/'$/, "").replace(/…$/, "");
        var said = s.text !== null && s.text.indexOf(bare) >= 0;
        var range = s.bits !== null
          ? (s.end - s.start === 1 ? "bit " + s.start : "bits " + s.start + "–" + (s.end - 1))
          : (s.end - s.start === 8 ? "byte " + s.start / 8
            : "bytes " + s.start / 8 + "–" + (s.end / 8 - 1));
        out.appendChild(h("div", { className: "ti-span ti-role-" + s.role + (s.bits !== null ? " ti-bits" : ""),
          role: "listitem", title: s.note || null, "data-name": s.name,
          "data-start": String(s.start), "data-end": String(s.end) },
          [h("div", { className: "ti-name", text: s.name })].concat(shown, [
            said ? null : h("div", { className: "ti-value", text: s.value }),
            h("div", { className: "ti-range", text: range }),
          ])));
      });
      return out;
    }

    var first = options.view && views[options.view] ? options.view : doc.views[0] && doc.views[0].name;
    if (first) {
      showView(first);
      show(first, typeof options.row === "number" ? options.row : views[first].steppable[0]);
    }
    return {
      show: function (viewName, k, event) { showView(viewName); show(viewName, k, event); },
      state: state,
      destroy: function () {
        stop();
        diagram.removeEventListener("click", onDiagramClick);
        if (external) {
          // The page's diagram goes back to how it was: no highlight, nothing dimmed.
          external.classList.remove("ti-linked");
          Array.prototype.forEach.call(external.querySelectorAll(".ti-current, .ti-future"),
            function (g) { g.classList.remove("ti-current", "ti-future"); });
        }
        el.textContent = "";
        el.classList.remove("ti-mounted");
      },
    };
  }

  function readDoc(el) {
    var data = el.querySelector("script.trace-inspector-data");
    return data ? JSON.parse(data.textContent) : null;
  }

  /* Mount every .trace-inspector of a page: embedded JSON, or data-src fetched when
   * the element comes near the screen. */
  function mountAll(scope) {
    var found = (scope || document).querySelectorAll(".trace-inspector:not(.ti-mounted)");
    Array.prototype.forEach.call(found, function (el) {
      var height = parseInt(el.getAttribute("data-height") || "0", 10) || undefined;
      var embedded = readDoc(el);
      if (embedded) {
        mount(el, embedded, { height: height, view: el.getAttribute("data-view") || undefined });
        return;
      }
      var src = el.getAttribute("data-src");
      if (!src) return;
      var load = function () {
        el.classList.add("ti-loading");
        fetch(src).then(function (r) {
          if (!r.ok) throw new Error(src + ": " + r.status);
          return r.json();
        }).then(function (doc) {
          el.classList.remove("ti-loading");
          mount(el, doc, { height: height, view: el.getAttribute("data-view") || undefined });
        }).catch(function (err) {
          el.classList.remove("ti-loading");
          el.textContent = "Could not load the trace: " + err.message;
        });
      };
      if ("IntersectionObserver" in root) {
        var seen = new root.IntersectionObserver(function (entries) {
          if (entries.some(function (e) { return e.isIntersecting; })) { seen.disconnect(); load(); }
        }, { rootMargin: "400px" });
        seen.observe(el);
      } else {
        load();
      }
    });
  }

  root.TraceInspector = {
    mount: mount, mountAll: mountAll, prepare: prepare, rowOf: rowOf, rowAt: rowAt,
  };
  if (typeof document !== "undefined" && !root.TRACE_INSPECTOR_NO_AUTOMOUNT) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", function () { mountAll(); });
    } else {
      mountAll();
    }
  }
})(typeof window !== "undefined" ? window : globalThis);
