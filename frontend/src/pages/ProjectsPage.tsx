import { useProjects } from '../api/queries';
import { navigate, projectPath } from '../router';
import { Link } from './Link';

export function ProjectsPage() {
  const projects = useProjects();
  const rows = projects.data ?? [];
  return (
    <section id="projects-view">
      <h2>Projects</h2>
      {projects.isError ? (
        <p className="error" role="alert">
          {projects.error.message}
        </p>
      ) : null}
      <p id="projects-empty" hidden={!projects.isSuccess || rows.length > 0}>
        You are not a member of any project yet.
      </p>
      <table id="projects">
        <thead>
          <tr>
            <th>Project</th>
            <th>Slug</th>
            <th>Your role</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((p) => (
            <tr key={p.slug} data-slug={p.slug} onClick={() => navigate(projectPath(p.slug))}>
              <td>
                <Link to={projectPath(p.slug)}>{p.name}</Link>
              </td>
              <td>{p.slug}</td>
              <td>{p.my_role}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
