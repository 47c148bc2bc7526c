//! The OpenAPI 3.0 description served at `/api` (and a small HTML page at `/api.html`).

use serde_json::{Value as Json, json};

/// The OpenAPI document of this server, with `base` as its server URL.
pub(super) fn document(base: &str, default_limit: usize, max_limit: usize) -> Json {
    let p = |name: &str, schema: Json, description: &str| {
        json!({"name": name, "in": "query", "required": false, "description": description,
               "schema": schema, "style": "form", "explode": false})
    };
    let limit =
        json!({"type": "integer", "minimum": 1, "maximum": max_limit, "default": default_limit});
    let search_params = json!([
        p(
            "bbox",
            json!({"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}),
            "minx,miny,maxx,maxy (lon/lat); minx > maxx crosses the antimeridian"
        ),
        p(
            "intersects",
            json!({"type": "string"}),
            "a GeoJSON geometry (not with bbox)"
        ),
        p(
            "datetime",
            json!({"type": "string"}),
            "an instant or an interval start/end (.. for an open end)"
        ),
        p(
            "ids",
            json!({"type": "array", "items": {"type": "string"}}),
            "item ids"
        ),
        p(
            "collections",
            json!({"type": "array", "items": {"type": "string"}}),
            "collection ids"
        ),
        p(
            "limit",
            limit.clone(),
            "items per page (larger values are clamped to the maximum)"
        ),
        p("filter", json!({"type": "string"}), "a CQL2 filter"),
        p(
            "filter-lang",
            json!({"type": "string", "enum": ["cql2-text", "cql2-json"]}),
            "filter language"
        ),
        p(
            "sortby",
            json!({"type": "string"}),
            "sort keys, e.g. -properties.datetime"
        ),
        p(
            "fields",
            json!({"type": "string"}),
            "fields to include/exclude, e.g. id,-assets"
        ),
        p(
            "token",
            json!({"type": "string"}),
            "paging token from a next link"
        ),
        p(
            "f",
            json!({"type": "string", "enum": ["geojson", "parquet"]}),
            "response format"
        ),
    ]);
    let items_params = json!([
        p(
            "bbox",
            json!({"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}),
            "minx,miny,maxx,maxy"
        ),
        p(
            "datetime",
            json!({"type": "string"}),
            "an instant or an interval"
        ),
        p("limit", limit, "items per page"),
        p("filter", json!({"type": "string"}), "a CQL2 filter"),
        p(
            "filter-lang",
            json!({"type": "string", "enum": ["cql2-text", "cql2-json"]}),
            "filter language"
        ),
        p("sortby", json!({"type": "string"}), "sort keys"),
        p("fields", json!({"type": "string"}), "fields"),
        p("token", json!({"type": "string"}), "paging token"),
        p(
            "f",
            json!({"type": "string", "enum": ["geojson", "parquet"]}),
            "response format"
        ),
    ]);
    let json_ok = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"type": "object"}}}});
    let geojson_ok = |d: &str| {
        json!({
            "description": d,
            "content": {
                "application/geo+json": {"schema": {"type": "object"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}
            }
        })
    };
    let error = json!({"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let collection_id = json!({"name": "collectionId", "in": "path", "required": true, "schema": {"type": "string"}});
    let items_with_id: Vec<Json> = std::iter::once(collection_id.clone())
        .chain(items_params.as_array().cloned().unwrap_or_default())
        .collect();
    let feature_id =
        json!({"name": "featureId", "in": "path", "required": true, "schema": {"type": "string"}});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "earthcatalog STAC API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A read-only STAC API over an H3-partitioned GeoParquet warehouse registered in Apache Iceberg."
        },
        "servers": [{"url": base}],
        "paths": {
            "/": {"get": {"summary": "Landing page", "operationId": "getLandingPage", "responses": {"200": json_ok("the landing page")}}},
            "/conformance": {"get": {"summary": "Conformance classes", "operationId": "getConformanceDeclaration", "responses": {"200": json_ok("conformance classes")}}},
            "/collections": {"get": {"summary": "Collections", "operationId": "getCollections", "responses": {"200": json_ok("the collections")}}},
            "/collections/{collectionId}": {"get": {"summary": "A collection", "operationId": "describeCollection", "parameters": [collection_id.clone()], "responses": {"200": json_ok("the collection"), "404": error.clone()}}},
            "/collections/{collectionId}/items": {"get": {"summary": "Items of a collection", "operationId": "getFeatures", "parameters": items_with_id, "responses": {"200": geojson_ok("a page of items"), "400": error.clone(), "404": error.clone()}}},
            "/collections/{collectionId}/items/{featureId}": {"get": {"summary": "An item", "operationId": "getFeature", "parameters": [collection_id.clone(), feature_id], "responses": {"200": {"description": "the item", "content": {"application/geo+json": {"schema": {"type": "object"}}}}, "404": error.clone()}}},
            "/collections/{collectionId}/queryables": {"get": {"summary": "Queryables of a collection", "operationId": "getCollectionQueryables", "parameters": [collection_id], "responses": {"200": {"description": "JSON Schema", "content": {"application/schema+json": {"schema": {"type": "object"}}}}}}},
            "/search": {
                "get": {"summary": "Item search", "operationId": "getItemSearch", "parameters": search_params, "responses": {"200": geojson_ok("a page of items"), "400": error.clone()}},
                "post": {"summary": "Item search", "operationId": "postItemSearch", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchBody"}}}}, "responses": {"200": geojson_ok("a page of items"), "400": error.clone()}}
            },
            "/queryables": {"get": {"summary": "Queryables", "operationId": "getQueryables", "responses": {"200": {"description": "JSON Schema", "content": {"application/schema+json": {"schema": {"type": "object"}}}}}}},
            "/_health": {"get": {"summary": "Health", "operationId": "getHealth", "responses": {"200": json_ok("the server is up; the snapshot served")}}}
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["code", "description"], "properties": {"code": {"type": "string"}, "description": {"type": "string"}}},
                "SearchBody": {"type": "object", "properties": {
                    "bbox": {"type": "array", "items": {"type": "number"}},
                    "intersects": {"type": "object"},
                    "datetime": {"type": "string"},
                    "ids": {"type": "array", "items": {"type": "string"}},
                    "collections": {"type": "array", "items": {"type": "string"}},
                    "limit": {"type": "integer", "minimum": 1},
                    "filter": {"oneOf": [{"type": "object"}, {"type": "string"}]},
                    "filter-lang": {"type": "string", "enum": ["cql2-text", "cql2-json"]},
                    "sortby": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "direction": {"type": "string", "enum": ["asc", "desc"]}}}},
                    "fields": {"type": "object", "properties": {"include": {"type": "array", "items": {"type": "string"}}, "exclude": {"type": "array", "items": {"type": "string"}}}},
                    "token": {"type": "string"}
                }}
            }
        }
    })
}

/// The service-doc page.
pub(super) fn html(base: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>earthcatalog STAC API</title></head>\
         <body><h1>earthcatalog STAC API</h1><p>A read-only STAC API over an Iceberg-registered \
         GeoParquet warehouse.</p><ul><li><a href=\"{base}/api\">OpenAPI document</a></li>\
         <li><a href=\"{base}/\">Landing page</a></li><li><a href=\"{base}/collections\">Collections</a></li>\
         <li><a href=\"{base}/search\">Search</a></li></ul></body></html>\n"
    )
}
