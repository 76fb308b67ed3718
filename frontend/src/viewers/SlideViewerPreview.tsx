// TEMPORARY: shows the slide viewer for an item of kind `slide` or `image` until the item
// page and the annotation store wire it in (then delete this file). It reads the item
// itself because the app's `Item` parser (api/items.ts) does not carry what the slide viewer
// needs (pixel.slide, flags) and refuses slides (no pixel.dtype). Shapes live only in this
// component's state: nothing is saved.
//
// Use from ItemPage.tsx:  <SlideViewerPreview itemId={itemId} />
// (it renders nothing for other kinds of item).
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';

import { api, unwrap } from '../api/client';
import { type ActiveLabel, type Shape, SlideViewer, isSlideKind, parseSlideItem } from './SlideViewer';

const PREVIEW_LABEL: ActiveLabel = { key: 'region', colour: '#e6194b' };

export function SlideViewerPreview({ itemId }: { itemId: number }) {
  const item = useQuery({
    queryKey: ['items', itemId, 'slide-view'],
    queryFn: async () =>
      parseSlideItem(unwrap(await api.GET('/api/items/{item_id}', { params: { path: { item_id: itemId } } }))),
  });
  const [shapes, setShapes] = useState<readonly Shape[]>([]);
  if (item.isError) {
    return (
      <p className="error" role="alert">
        {item.error.message}
      </p>
    );
  }
  if (!item.data || !isSlideKind(item.data.kind)) return null;
  return (
    <SlideViewer item={item.data} shapes={shapes} onShapesChange={setShapes} activeLabel={PREVIEW_LABEL} />
  );
}
