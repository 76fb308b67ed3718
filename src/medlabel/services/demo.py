"""The demo project created by ``medlabel demo``: a label schema and guidelines that show
what a real medical annotation project looks like."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.domain.roles import Role
from medlabel.services import guidelines, projects, schemas
from medlabel.services.actor import Actor, Clock
from medlabel.storage.models import Project

DEMO_SLUG = "demo"

_SCT_MORPH = {"value": "49755003", "scheme": "SCT", "meaning": "Morphologically Abnormal Structure"}
_SCT_ANAT = {"value": "123037004", "scheme": "SCT", "meaning": "Anatomical Structure"}

DEMO_CLASSES: list[dict[str, Any]] = [
    {
        "key": "lung_nodule",
        "name": "Lung nodule",
        "color": "#e6194b",
        "hotkey": "1",
        "kinds": ["mask", "box", "polygon"],
        "description": "Any solid, part-solid or ground-glass nodule of 3 mm or more.",
        "attributes": [
            {
                "key": "texture",
                "name": "Texture",
                "type": "enum",
                "required": True,
                "options": ["solid", "part-solid", "ground-glass"],
            },
            {
                "key": "diameter",
                "name": "Long-axis diameter",
                "type": "number",
                "unit": "mm",
                "minimum": 0,
                "maximum": 300,
            },
            {"key": "calcified", "name": "Calcified", "type": "bool", "default": False},
        ],
        "segmented_property_category": _SCT_MORPH,
        "segmented_property_type": {"value": "27925004", "scheme": "SCT", "meaning": "Nodule"},
    },
    {
        "key": "liver",
        "name": "Liver",
        "color": "#3cb44b",
        "hotkey": "2",
        "kinds": ["mask"],
        "segmented_property_category": _SCT_ANAT,
        "segmented_property_type": {"value": "10200004", "scheme": "SCT", "meaning": "Liver"},
    },
    {
        "key": "fracture",
        "name": "Fracture",
        "color": "#ffe119",
        "hotkey": "3",
        "kinds": ["box", "polyline"],
        "segmented_property_category": _SCT_MORPH,
        "segmented_property_type": {"value": "72704001", "scheme": "SCT", "meaning": "Fracture"},
    },
    {
        "key": "carina",
        "name": "Carina",
        "color": "#4363d8",
        "hotkey": "4",
        "kinds": ["point"],
        "description": "Landmark: the tracheal bifurcation.",
    },
    {
        "key": "tumour_tissue",
        "name": "Tumour tissue",
        "color": "#f58231",
        "hotkey": "5",
        "kinds": ["polygon", "mask"],
        "segmented_property_category": _SCT_MORPH,
        "segmented_property_type": {"value": "108369006", "scheme": "SCT", "meaning": "Neoplasm"},
    },
    {
        "key": "dr_grade",
        "name": "Diabetic retinopathy grade",
        "color": "#911eb4",
        "hotkey": "6",
        "kinds": ["classification"],
        "attributes": [
            {
                "key": "grade",
                "name": "ICDR grade",
                "type": "enum",
                "required": True,
                "options": ["0 none", "1 mild NPDR", "2 moderate NPDR", "3 severe NPDR", "4 PDR"],
            }
        ],
    },
]

DEMO_GUIDELINES = """# Demo project: annotation guidelines

These guidelines are versioned: every task records the version in force when it was done.

## Lung nodules (CT)
- Segment every nodule of **3 mm or more** in long-axis diameter with the brush, on every
  slice it appears on; use slice interpolation between key slices and check each slice.
- Use the *lung* window (W 1500, L -600) to find nodules and the *mediastinal* window
  (W 400, L 40) to judge calcification.
- Record the texture (solid, part-solid, ground-glass); leave vessels seen in cross-section
  out (scroll: vessels branch, nodules do not).

## Fractures (X-ray)
Draw a tight box around each fracture line; use a polyline along the line when it is long.

## Landmarks
Place the *carina* at the tip of the tracheal bifurcation on the slice where it first splits.

## Fundus photographs
Grade diabetic retinopathy with the International Clinical DR scale (ICDR 0-4).

## When unsure
Flag the item for review with a comment pinned to the place you are unsure about.
"""


def ensure_demo_project(session: Session, actor: Actor, clock: Clock, owner: str) -> Project:
    """Create the demo project with its schema and guidelines, unless it exists."""
    project = session.scalar(select(Project).where(Project.slug == DEMO_SLUG))
    if project is not None:
        projects.set_member(session, actor, clock, DEMO_SLUG, owner, Role.ADMIN)
        return project
    project = projects.create_project(
        session,
        actor,
        clock,
        slug=DEMO_SLUG,
        name="Demo: chest CT, X-ray, fundus and slides",
        description="A demo project with a realistic label schema and guidelines.",
        owner=owner,
    )
    schemas.save(
        session,
        actor,
        clock,
        DEMO_SLUG,
        base_version=0,
        classes=DEMO_CLASSES,
        comment="Initial demo schema",
    )
    guidelines.save(
        session,
        actor,
        clock,
        DEMO_SLUG,
        base_version=0,
        markdown=DEMO_GUIDELINES,
        comment="Initial demo guidelines",
    )
    return project
