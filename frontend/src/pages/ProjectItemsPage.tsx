import { thumbnailUrl } from '../api/items';
import { useProjectItems } from '../api/queries';
import { itemPath } from '../router';
import { Link } from './Link';

export function ProjectItemsPage({ slug }: { slug: string }) {
  const items = useProjectItems(slug);
  const list = items.data?.items ?? [];
  return (
    <section id="items-view" data-slug={slug}>
      <p className="crumbs">
        <Link to="/">Projects</Link> / {slug}
      </p>
      <h2>Items</h2>
      {items.isPending ? <p className="muted">Loading…</p> : null}
      {items.isError ? (
        <p className="error" role="alert">
          {items.error.message}
        </p>
      ) : null}
      {items.isSuccess && list.length === 0 ? (
        <p id="items-empty">This project has no items yet.</p>
      ) : null}
      <ul id="items" className="item-grid">
        {list.map((item) => (
          <li key={item.id} data-item-id={item.id} data-kind={item.kind}>
            <Link to={itemPath(item.id, slug)} className="item-card">
              <img src={thumbnailUrl(item.id)} alt="" loading="lazy" width={160} height={160} />
              <span className="item-label">{item.label || `Item ${item.id}`}</span>
              <span className="muted">
                {[item.modality, item.kind, framesText(item.pixel.frames)].filter(Boolean).join(' · ')}
              </span>
            </Link>
          </li>
        ))}
      </ul>
      {items.data && items.data.total > list.length ? (
        <p className="muted">
          Showing {list.length} of {items.data.total} items.
        </p>
      ) : null}
    </section>
  );
}

function framesText(frames: number): string {
  return frames > 1 ? `${frames} slices` : '';
}
