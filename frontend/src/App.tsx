import { useLogout, useSession } from './api/queries';
import { ItemPage } from './pages/ItemPage';
import { LoginPage } from './pages/LoginPage';
import { ProjectItemsPage } from './pages/ProjectItemsPage';
import { ProjectsPage } from './pages/ProjectsPage';
import { Link } from './pages/Link';
import { useRoute } from './router';

export function App() {
  const session = useSession();
  const logout = useLogout();
  const route = useRoute();
  const user = session.data?.user;

  return (
    <>
      <header className="topbar">
        <h1>
          <Link to="/">medlabel</Link>
        </h1>
        {user ? (
          <div id="whoami">
            <span id="whoami-name">{user.display_name}</span>
            <button id="logout" type="button" onClick={() => logout.mutate()}>
              Log out
            </button>
          </div>
        ) : null}
      </header>
      <main>
        {session.isPending ? (
          <p className="muted">Loading…</p>
        ) : session.isError ? (
          <p className="error" role="alert">
            {session.error.message}
          </p>
        ) : !user ? (
          <LoginPage />
        ) : route.page === 'projects' ? (
          <ProjectsPage />
        ) : route.page === 'project' ? (
          <ProjectItemsPage slug={route.slug} />
        ) : route.page === 'item' ? (
          <ItemPage itemId={route.itemId} slug={route.slug} />
        ) : (
          <section>
            <h2>Not found</h2>
            <p>
              There is no page at {route.path}. <Link to="/">Back to the projects</Link>
            </p>
          </section>
        )}
      </main>
    </>
  );
}
