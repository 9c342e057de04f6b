// poster ui: small progressive enhancements. Every page works without this file.
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  // -- polling: an element with data-poll="URL" is replaced by the URL's HTML every
  // data-every ms, as long as the new HTML still asks for it; data-reload reloads the page.
  function poll(el) {
    const every = parseInt(el.dataset.every || "3000", 10);
    setTimeout(async () => {
      if (!document.body.contains(el)) return;
      const typing = document.activeElement;  // never swap a field out from under the user
      if (el.contains(typing) && typing.matches("input, textarea, select")) { poll(el); return; }
      try {
        const r = await fetch(el.dataset.poll, { headers: { "X-Partial": "1" }, credentials: "same-origin" });
        if (!r.ok) { poll(el); return; }
        const tpl = document.createElement("template");
        tpl.innerHTML = (await r.text()).trim();
        const fresh = tpl.content;
        if (fresh.querySelector("[data-reload]")) { location.reload(); return; }
        const nodes = Array.from(fresh.childNodes);
        el.replaceWith(fresh);
        nodes.forEach((n) => n.nodeType === 1 && enhance(n));
      } catch (e) { poll(el); }
    }, every);
  }

  // -- drop zones: dropped files go into the form's <input type="file">
  function dropzone(zone) {
    const input = zone.querySelector("input[type=file]");
    ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("over"); }));
    ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("over")));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      if (!e.dataTransfer.files.length) return;
      const dt = new DataTransfer();
      Array.from(e.dataTransfer.files).forEach((f) => dt.items.add(f));
      input.files = dt.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }

  // -- chosen files: thumbnails, and one alt-text field per image
  function picked(form) {
    const input = form.querySelector("[data-files]");
    const box = form.querySelector("[data-picked]");
    const single = form.querySelector("[data-single-alt]");
    if (!input || !box) return;
    input.addEventListener("change", () => {
      box.replaceChildren();
      const files = Array.from(input.files);
      box.hidden = files.length === 0;
      files.forEach((f) => {
        const fig = document.createElement("figure");
        const img = document.createElement("img");
        img.src = URL.createObjectURL(f);
        img.alt = "";
        const cap = document.createElement("figcaption");
        cap.textContent = f.name;
        fig.append(img, cap);
        if (single && files.length > 1) {
          const alt = document.createElement("input");
          alt.name = "alt";
          alt.placeholder = single.textContent.trim();
          alt.setAttribute("aria-label", single.textContent.trim() + " — " + f.name);
          fig.append(alt);
        }
        box.append(fig);
      });
      if (single) {
        single.hidden = files.length > 1;
        single.querySelector("input").disabled = files.length > 1;
      }
    });
  }

  // -- uploads with a progress bar; the page stays usable meanwhile
  function upload(form) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const bar = form.querySelector("[data-progress]");
      const status = form.querySelector("[data-status]");
      const button = form.querySelector("button[type=submit]");
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.upload.onprogress = (ev) => {
        if (ev.lengthComputable) { bar.hidden = false; bar.value = (100 * ev.loaded) / ev.total; }
      };
      xhr.onload = () => {
        button.disabled = false;
        bar.hidden = true;
        let answer = {};
        try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = { ok: false, error: xhr.responseText }; }
        status.textContent = answer.ok ? answer.message || "" : answer.error || xhr.statusText;
        status.className = "status " + (answer.ok ? "ok" : "error");
        if (!answer.ok) return;
        if (answer.url) { location.href = answer.url; return; }
        form.reset();
        form.querySelectorAll("[data-files]").forEach((i) => i.dispatchEvent(new Event("change")));
        const q = document.getElementById("queue");
        if (q) { q.dataset.every = "600"; poll(q); q.dataset.every = "4000"; }
      };
      xhr.onerror = () => { button.disabled = false; status.textContent = "network error"; status.className = "status error"; };
      button.disabled = true;
      bar.hidden = false;
      bar.value = 0;
      xhr.send(new FormData(form));
    });
  }

  // -- zoom: click toggles between fit-to-frame and 100 % (one image pixel per screen pixel)
  function zoom(frame) {
    const toggle = (e) => {
      const img = frame.querySelector("img");
      const on = frame.classList.toggle("actual");
      if (on) {
        const r = img.getBoundingClientRect();
        const fx = e && e.clientX ? (e.clientX - r.left) / r.width : 0.5;
        const fy = e && e.clientY ? (e.clientY - r.top) / r.height : 0.5;
        img.style.width = img.naturalWidth / window.devicePixelRatio + "px";
        frame.scrollLeft = fx * frame.scrollWidth - frame.clientWidth / 2;
        frame.scrollTop = fy * frame.scrollHeight - frame.clientHeight / 2;
      } else {
        img.style.width = "";
      }
    };
    frame.addEventListener("click", toggle);
    frame.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); } });
  }

  function enhance(root) {
    root.querySelectorAll("[data-poll]").forEach(poll);
    if (root.matches && root.matches("[data-poll]")) poll(root);
    root.querySelectorAll("[data-dropzone]").forEach(dropzone);
    root.querySelectorAll("form[data-upload]").forEach((f) => { picked(f); upload(f); });
    root.querySelectorAll("[data-zoom]").forEach(zoom);
    root.querySelectorAll("form[data-confirm]").forEach((f) =>
      f.addEventListener("submit", (e) => { if (!confirm(f.dataset.confirm)) e.preventDefault(); }));
  }
  document.addEventListener("DOMContentLoaded", () => enhance(document));
})();
