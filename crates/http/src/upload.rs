//! HTTP file upload (XEP-0363 §6) on the client listener: `PUT /upload/{id}/{name}?…` with a
//! slot's signed query streams the body into the store, and `GET`/`HEAD
//! /upload/{id}/{name}` serves a live file (with ranges, its recorded type and length).
//! The checks are `parley-upload`'s; this file maps its refusals to HTTP statuses, the one
//! place that does, and carries the bytes.
//!
//! Served files are never interpreted by a browser as part of this site: `nosniff`, a
//! sandboxing `Content-Security-Policy`, and `Content-Disposition: attachment` for anything
//! but images, audio and video.

use actix_files::NamedFile;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use parley_upload::PutError;

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

/// `GET`/`HEAD /upload/{id}/{name}`: the file while it lives, else 404.
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
    let named = match NamedFile::open_async(&file.path).await {
        Ok(n) => n,
        // Recorded but its bytes gone (expired on another node meanwhile).
        Err(_) => return cors(&req, &state, HttpResponse::NotFound().finish()),
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
    let mut resp = named
        .set_content_type(mime)
        .set_content_disposition(disposition)
        .use_etag(true)
        .into_response(&req);
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    cors(&req, &state, resp)
}
