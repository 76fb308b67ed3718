import { useQuery } from '@tanstack/react-query';

import { api, unwrap } from '../api/client';
import { type Item, isRadiology, renderedFrameUrl } from '../api/items';
import { useItem } from '../api/queries';
import { projectPath } from '../router';
import { AnnotationWorkspace } from '../components/AnnotationWorkspace';
import { RadiologyViewer } from '../viewers/RadiologyViewer';
import { SLIDE_TOOLS, type SlideItem, SlideViewer, isSlideKind, parseSlideItem } from '../viewers/SlideViewer';
import { Link } from './Link';

export function ItemPage({ itemId, slug: routeSlug }: { itemId: number; slug: string | null }) {
  const item = useItem(itemId);
  // The project: from the link (?project=) or, failing that, from the item itself.
  const slug = routeSlug ?? item.data?.project ?? null;
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
      {/* Without the project there is no label schema to annotate with. */}
      {item.data && isRadiology(item.data) && !slug ? <RadiologyViewer item={item.data} /> : null}
      {/* Slides and photos: the OpenSeadragon viewer, in the same workspace. */}
      {item.data && !isRadiology(item.data) && isSlideKind(item.data.kind) ? (
        <SlideItemView item={item.data} slug={slug} />
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

/** The slide viewer reads the item's slide block itself (api/items.ts's Item does not carry
 * it): see viewers/slide/slideItem.ts. */
function useSlideItem(itemId: number) {
  return useQuery({
    queryKey: ['items', itemId, 'slide-view'],
    queryFn: async (): Promise<SlideItem> =>
      parseSlideItem(unwrap(await api.GET('/api/items/{item_id}', { params: { path: { item_id: itemId } } }))),
  });
}

function SlideItemView({ item, slug }: { item: Item; slug: string | null }) {
  const slide = useSlideItem(item.id);
  if (slide.isError) {
    return (
      <p className="error" role="alert">
        {slide.error.message}
      </p>
    );
  }
  const data = slide.data;
  if (!data) return <p className="muted">Loading…</p>;
  if (!slug) return <SlideViewer item={data} />;
  return (
    <AnnotationWorkspace
      item={item}
      slug={slug}
      tools={SLIDE_TOOLS}
      viewer={({ onReady, toolbar }) => <SlideViewer item={data} onReady={onReady} toolbar={toolbar} />}
    />
  );
}
