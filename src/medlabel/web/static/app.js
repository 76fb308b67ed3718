// Minimal page for the foundation: log in, see your projects, log out.
// The full annotation workspace (React + Vite) replaces this page later.

let csrfToken = null;

const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrfToken && method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json();
  return { ok: response.ok, status: response.status, data };
}

function show(view) {
  $("login-view").hidden = view !== "login";
  $("projects-view").hidden = view !== "projects";
  $("whoami").hidden = view !== "projects";
}

async function loadProjects() {
  const result = await api("GET", "/api/projects?sort=name");
  const tbody = $("projects").querySelector("tbody");
  tbody.replaceChildren();
  for (const project of result.ok ? result.data.items : []) {
    const row = document.createElement("tr");
    row.dataset.slug = project.slug;
    for (const text of [project.name, project.slug, project.my_role]) {
      const cell = document.createElement("td");
      cell.textContent = text;  // never innerHTML: names are user input
      row.append(cell);
    }
    tbody.append(row);
  }
  $("projects-empty").hidden = tbody.children.length > 0;
}

async function enter(session) {
  csrfToken = session.csrf_token;
  $("whoami-name").textContent = session.user.display_name;
  show("projects");
  await loadProjects();
}

async function start() {
  const session = await api("GET", "/api/auth/session");
  if (session.ok) await enter(session.data);
  else show("login");

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    const result = await api("POST", "/api/auth/login", {
      username: $("username").value, password: $("password").value,
    });
    $("password").value = "";
    if (result.ok) await enter(result.data);
    else $("login-error").textContent = result.data?.detail ?? "Login failed.";
  });

  $("logout").addEventListener("click", async () => {
    await api("POST", "/api/auth/logout");
    csrfToken = null;
    show("login");
  });
}

start();
