"""Metadata: what a posted copy says about itself.

Stripping is not optional and not done here: `imaging.encode` builds every copy from pixels
only, so EXIF (GPS!), XMP, IPTC, ICC, comments and thumbnails of the original never reach a
platform. This step only decides what is written back on purpose: the copyright line and the
IPTC/PLUS "Data Mining" property set to "prohibited for AI/ML training", as XMP (JPEG APP1,
PNG iTXt `XML:com.adobe.xmp`, WebP XMP chunk).

Honestly: X and most social platforms strip it on upload; it survives on your own site,
in archives, and with platforms that keep the original file. It is a statement of terms that
scrapers may read, not a technical barrier.
"""

from __future__ import annotations

from typing import Literal
from xml.sax.saxutils import escape

from PIL import Image

from poster.protect import Step, StepContext, StepParams

# PLUS License Data Format vocabulary (used by IPTC Photo Metadata 2023.1 "Data Mining")
DMI = "http://ns.useplus.org/ldf/vocab/DMI-"
DATA_MINING = {
    "prohibited-ai": DMI + "PROHIBITED-AIMLTRAINING",
    "prohibited-genai": DMI + "PROHIBITED-GENAIMLTRAINING",
    "prohibited": DMI + "PROHIBITED",
    "unspecified": DMI + "UNSPECIFIED",
}


class MetadataParams(StepParams):
    copyright: str | None = None  # default: "© <artist>. All rights reserved."
    data_mining: Literal["prohibited-ai", "prohibited-genai", "prohibited", "unspecified"] = "prohibited-ai"


def xmp_packet(*, rights: str, data_mining: str, creator: str = "") -> bytes:
    """A minimal, valid XMP packet (UTF-8) with dc:rights, xmpRights:Marked and plus:DataMining."""
    creator_xml = (
        f"<dc:creator><rdf:Seq><rdf:li>{escape(creator)}</rdf:li></rdf:Seq></dc:creator>" if creator else ""
    )
    body = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"'
        ' xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/">'
        f'<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{escape(rights)}</rdf:li></rdf:Alt></dc:rights>'
        f"{creator_xml}"
        "<xmpRights:Marked>True</xmpRights:Marked>"
        f"<plus:DataMining>{escape(DATA_MINING[data_mining])}</plus:DataMining>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )
    return body.encode("utf-8")


class Metadata(Step):
    """Not a pixel step: leaves the image alone and tells the encoder what to write."""

    name = "metadata"
    Params = MetadataParams
    params: MetadataParams
    pixel_step = False

    def apply(self, image: Image.Image, ctx: StepContext) -> Image.Image:
        return image

    def xmp(self, artist: str) -> bytes:
        rights = self.params.copyright
        if rights is None:
            rights = f"© {artist}. All rights reserved." if artist else "All rights reserved."
        return xmp_packet(rights=rights, data_mining=self.params.data_mining, creator=artist)
