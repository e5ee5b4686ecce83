"""One small error hierarchy. The CLI maps each class to an exit code, the service to a 4xx JSON body."""

from __future__ import annotations


class PerifaceError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``exit_code`` is what the CLI returns."""

    code = "periface_error"
    exit_code = 1
    http_status = 400

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)
        self.reason = message


class ImageError(PerifaceError):
    """Not an image, truncated, unsupported format, or over the pixel limit."""

    code = "bad_image"
    exit_code = 3
    http_status = 422


class ImageTooLargeError(ImageError):
    code = "image_too_large"
    http_status = 413


class NoFaceError(PerifaceError):
    code = "no_face"
    exit_code = 4
    http_status = 422


class UnknownIdentityError(PerifaceError):
    code = "unknown_identity"
    exit_code = 5
    http_status = 404


class GalleryError(PerifaceError):
    """The directory is not a gallery, or the gallery is inconsistent."""

    code = "bad_gallery"
    exit_code = 6
    http_status = 409


class ConsentError(PerifaceError):
    """Enrolment without a valid consent record, or a search without a purpose."""

    code = "consent_required"
    exit_code = 7
    http_status = 403


class PurposeRequiredError(ConsentError):
    """A search or other audited request that does not say why it is made."""

    code = "purpose_required"
    http_status = 400


class ModelError(PerifaceError):
    """A model file is missing or its SHA-256 does not match."""

    code = "model_error"
    exit_code = 8
    http_status = 500


class ThermalFormatError(PerifaceError):
    """A file that is not a supported radiometric thermal format, or one with damaged thermal data."""

    code = "bad_thermal"
    exit_code = 9
    http_status = 422


class VideoError(PerifaceError):
    """A video file, stream or image folder that cannot be opened or yields no frame."""

    code = "bad_video"
    exit_code = 11
    http_status = 422


class AnnotationError(PerifaceError):
    """An annotation file or folder (Pascal-VOC) that cannot be read or does not say what its boxes are."""

    code = "bad_annotation"
    exit_code = 12
    http_status = 422


class EncryptionKeyError(PerifaceError):
    """The template encryption key is missing or wrong."""

    code = "bad_key"
    exit_code = 10
    http_status = 500
