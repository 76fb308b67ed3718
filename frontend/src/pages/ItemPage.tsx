import { isRadiology, renderedFrameUrl } from '../api/items';
import { useItem } from '../api/queries';
import { projectPath } from '../router';
import { AnnotationWorkspace } from '../components/AnnotationWorkspace';
import { RadiologyViewer } from '../viewers/RadiologyViewer';
import { isSlideKind } from '../viewers/SlideViewer';
import { SlideViewerPreview } from '../viewers/SlideViewerPreview';
import { Link } from './Link';

export function ItemPage({ itemId, slug }: { itemId: number; slug: string | null }) {
  const item = useItem(itemId);
  return (
    <section id="item-view" data-item-id={itemId}>
      <p className="crumbs">
        <Link to="/">Projects</Link>
        {slug ? (
          <>
            {' / '}
            <Link to={projectPath(slug)}>{slug}</Link>
          </>
        ) : null}
        {' / '}
        {item.data?.label || `Item ${itemId}`}
      </p>
      {item.isPending ? <p className="muted">Loading…</p> : null}
      {item.isError ? (
        <p className="error" role="alert">
          {item.error.message}
        </p>
      ) : null}
      {item.data && isRadiology(item.data) && slug ? <AnnotationWorkspace item={item.data} slug={slug} /> : null}
      {/* Without the project (a bare /items/{id} link) there is no label schema to annotate with. */}
      {item.data && isRadiology(item.data) && !slug ? <RadiologyViewer item={item.data} /> : null}
      {/* Slides and photos: the OpenSeadragon viewer (drawing is not saved yet). */}
      {item.data && !isRadiology(item.data) && isSlideKind(item.data.kind) ? (
        <SlideViewerPreview itemId={itemId} />
      ) : null}
      {item.data && !isRadiology(item.data) && !isSlideKind(item.data.kind) ? (
        <div className="fallback-view">
          <p className="muted">
            The {item.data.kind} viewer is not built yet; this is the server's rendering.
          </p>
          <img src={renderedFrameUrl(item.data.id, 0)} alt={item.data.label} />
        </div>
      ) : null}
    </section>
  );
}
