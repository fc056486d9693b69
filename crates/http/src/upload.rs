//! HTTP file upload (XEP-0363 §6) on the client listener: `PUT /upload/{id}/{name}?…` with a
//! slot's signed query streams the body into the store, and `GET`/`HEAD
//! /upload/{id}/{name}` serves a live file (its recorded type and length, byte ranges,
//! validators). The checks are `parley-upload`'s, and so is the store — a directory or an
//! object store, which this file never asks about; this file maps its refusals to HTTP
//! statuses, the one place that does, and carries the bytes.
//!
//! Served files are never interpreted by a browser as part of this site: `nosniff`, a
//! sandboxing `Content-Security-Policy`, and `Content-Disposition: attachment` for anything
//! but images, audio and video.

use std::time::{Duration, SystemTime};

use actix_web::body::SizedStream;
use actix_web::http::header::{
    self, ContentDisposition, ContentRangeSpec, DispositionParam, DispositionType, EntityTag,
    HttpDate,
};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use parley_upload::range::{self, Requested};
use parley_upload::{FileBody, PutError, StoredFile};

use crate::origin::cors;
use crate::web_state::WebState;

/// `/upload/{id}/{name}` from the raw request path (the name still percent-encoded, as
/// the slot signed it).
fn id_and_name(req: &HttpRequest) -> Option<(&str, &str)> {
    let rest = req.uri().path().strip_prefix("/upload/")?;
    let (id, name) = rest.split_once('/')?;
    (!name.contains('/')).then_some((id, name))
}

/// The one mapping of a refused PUT to its status (and the count of refusals).
fn put_refused(e: &PutError) -> HttpResponse {
    parley_router::metrics::upload(false, 0);
    let mut resp = match e {
        PutError::BadUrl => HttpResponse::NotFound(),
        PutError::BadSignature | PutError::Expired => HttpResponse::Forbidden(),
        PutError::WrongSize | PutError::WrongType => HttpResponse::BadRequest(),
        PutError::Exists => HttpResponse::Conflict(),
        PutError::OverQuota => HttpResponse::PayloadTooLarge(),
        PutError::Busy => HttpResponse::TooManyRequests(),
        PutError::Internal(_) => HttpResponse::InternalServerError(),
    };
    if let PutError::Internal(reason) = e {
        tracing::warn!(error = %reason, "upload failed");
    }
    resp.content_type("text/plain; charset=utf-8")
        .body(format!("{e}\n"))
}

/// `PUT /upload/{id}/{name}?size&type&owner&expires&sig`: 201 once stored.
pub(crate) async fn put(
    req: HttpRequest,
    mut body: web::Payload,
    state: web::Data<WebState>,
) -> HttpResponse {
    let Some(uploads) = state.uploads.clone() else {
        return HttpResponse::NotFound().finish();
    };
    let Some((id, name)) = id_and_name(&req) else {
        return cors(&req, &state, put_refused(&PutError::BadUrl));
    };
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let now = parley_proto::clock::now_ms();
    let checked = uploads.check_put(id, name, req.query_string(), length, content_type, now);
    let grant = match checked {
        Ok(g) => g,
        Err(e) => return cors(&req, &state, put_refused(&e)),
    };
    let size = grant.size;
    let mut partial = match uploads.begin(grant, now).await {
        Ok(p) => p,
        Err(e) => return cors(&req, &state, put_refused(&e)),
    };
    while let Some(chunk) = body.next().await {
        let written = match chunk {
            Ok(bytes) => partial.write(&bytes).await,
            // A broken body (a bad chunk, the client gone): not the slot's bytes. A failed
            // disk write stays an internal error.
            Err(_) => Err(PutError::WrongSize),
        };
        if let Err(e) = written {
            uploads.abandon(partial).await;
            return cors(&req, &state, put_refused(&e));
        }
    }
    let resp = match uploads.finish(partial, parley_proto::clock::now_ms()).await {
        Ok(()) => {
            parley_router::metrics::upload(true, size);
            HttpResponse::Created().finish()
        }
        Err(e) => put_refused(&e),
    };
    cors(&req, &state, resp)
}

/// `GET`/`HEAD /upload/{id}/{name}`: the file while it lives, else 404; a range of it
/// (206, or 416 past its end); 304 when the client's copy is current.
pub(crate) async fn get(req: HttpRequest, state: web::Data<WebState>) -> HttpResponse {
    let Some(uploads) = state.uploads.clone() else {
        return HttpResponse::NotFound().finish();
    };
    let Some((id, name)) = id_and_name(&req) else {
        return HttpResponse::NotFound().finish();
    };
    let file = match uploads.file(id, name, parley_proto::clock::now_ms()).await {
        Ok(Some(f)) => f,
        Ok(None) => return cors(&req, &state, HttpResponse::NotFound().finish()),
        Err(e) => {
            tracing::warn!(error = %e, "upload lookup failed");
            return HttpResponse::InternalServerError().finish();
        }
    };
    let size = file.record.size;
    let validators = Validators::of(&file);
    if validators.not_modified(&req) {
        let mut resp = HttpResponse::NotModified();
        validators.insert(&mut resp);
        return cors(&req, &state, resp.finish());
    }
    let asked = validators
        .range_applies(&req)
        .then(|| req.headers().get(header::RANGE))
        .flatten()
        .and_then(|v| v.to_str().ok());
    let (status, part) = match range::requested(asked, size) {
        Requested::Whole => (StatusCode::OK, None),
        Requested::Part(part) => (StatusCode::PARTIAL_CONTENT, Some(part)),
        Requested::Unsatisfiable => {
            // RFC 9110 §15.5.17: the size, so that the client can ask again.
            let resp = HttpResponse::RangeNotSatisfiable()
                .insert_header(header::ContentRange(ContentRangeSpec::Bytes {
                    range: None,
                    instance_length: Some(size),
                }))
                .finish();
            return cors(&req, &state, resp);
        }
    };
    let length = part.as_ref().map_or(size, |p| p.end - p.start);
    // HEAD answers from the record: the bytes are not read only to be dropped.
    let body: FileBody = if req.method() == Method::HEAD {
        futures_util::stream::empty().boxed()
    } else {
        match uploads.read(&file, part.clone()).await {
            Ok(Some(body)) => body,
            // Recorded but its bytes gone (expired on another node meanwhile).
            Ok(None) => return cors(&req, &state, HttpResponse::NotFound().finish()),
            Err(e) => {
                tracing::warn!(error = %e, "reading an uploaded file failed");
                return HttpResponse::InternalServerError().finish();
            }
        }
    };
    let mime: mime::Mime = file
        .record
        .content_type
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let inline = matches!(mime.type_(), mime::IMAGE | mime::AUDIO | mime::VIDEO);
    let disposition = ContentDisposition {
        disposition: if inline {
            DispositionType::Inline
        } else {
            DispositionType::Attachment
        },
        parameters: vec![DispositionParam::FilenameExt(header::ExtendedValue {
            charset: header::Charset::Ext("UTF-8".into()),
            language_tag: None,
            value: file.record.filename.clone().into_bytes(),
        })],
    };
    let mut resp = HttpResponse::build(status);
    resp.content_type(mime.to_string())
        .insert_header(disposition)
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ));
    validators.insert(&mut resp);
    if let Some(part) = &part {
        resp.insert_header(header::ContentRange(ContentRangeSpec::Bytes {
            range: Some((part.start, part.end - 1)),
            instance_length: Some(size),
        }));
    }
    cors(&req, &state, resp.body(SizedStream::new(length, body)))
}

/// A file's validators (RFC 9110 §8.8): the bytes under an id never change, so the id is a
/// strong entity tag, and the upload's time its last modification.
struct Validators {
    etag: EntityTag,
    modified: HttpDate,
}

impl Validators {
    fn of(file: &StoredFile) -> Validators {
        // Whole seconds, as HTTP dates carry them, so that comparisons are exact.
        let secs = u64::try_from(file.record.created_ms / 1000).unwrap_or(0);
        Validators {
            etag: EntityTag::new_strong(file.record.id.clone()),
            modified: HttpDate::from(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
        }
    }

    fn insert(&self, resp: &mut actix_web::HttpResponseBuilder) {
        resp.insert_header(header::ETag(self.etag.clone()))
            .insert_header(header::LastModified(self.modified));
    }

    /// §13.1.2 and §13.1.3: the client's copy is current (`If-None-Match` decides when
    /// present, else `If-Modified-Since`).
    fn not_modified(&self, req: &HttpRequest) -> bool {
        match req.get_header::<header::IfNoneMatch>() {
            Some(header::IfNoneMatch::Any) => true,
            Some(header::IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&self.etag)),
            None => req
                .get_header::<header::IfModifiedSince>()
                .is_some_and(|since| self.modified <= since.0),
        }
    }

    /// §13.1.5: a `Range` is served only if `If-Range` (when present) names this file.
    fn range_applies(&self, req: &HttpRequest) -> bool {
        match req.get_header::<header::IfRange>() {
            None => true,
            Some(header::IfRange::EntityTag(tag)) => tag.strong_eq(&self.etag),
            Some(header::IfRange::Date(date)) => date == self.modified,
        }
    }
}
